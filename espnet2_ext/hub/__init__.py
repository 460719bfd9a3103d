"""Publishing packed models: the Hugging Face model card (``model_card``); the CLI is ``bin/upload_model``."""
