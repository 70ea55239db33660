"""The iGSM generator, text parser, checker and probe labels (see ../shared/igsm-spec.md)."""
