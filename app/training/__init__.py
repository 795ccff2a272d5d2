"""Teaching a model: fine-tuning on annotated slides, and where to annotate next."""
