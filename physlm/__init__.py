"""physlm: iGSM data, GPT-2+RoPE training, evaluation and V-probing for 'Physics of LMs 2.1'."""

__version__ = "0.1.0"
