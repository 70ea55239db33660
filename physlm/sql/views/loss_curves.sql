-- loss_curves: for each train step installed from a pretrained folder, the loss at every checkpoint of the run
-- that made its weights (the card's curve; the registry holds the installed final checkpoint only).
CREATE VIEW loss_curves AS
SELECT * EXCLUDE (filename) FROM {source};
