"""Register espnet2_ext's classes in ESPnet's ``ClassChoices`` so YAML configs pick them by name.

Names added to ``espnet2.tasks.asr``:
  frontend      ``s3prl_tokenverse``  -> TaskConditionedS3prlFrontend (S3PRL upstream + task vectors)
  encoder       ``identity``          -> IdentityEncoder (XLSR output straight to the joint network)
  model         ``tokenverse``        -> TokenVerseASRModel (transducer, selectable RNN-T loss backend)
  preprocessor  ``tokenverse``        -> TokenVersePreprocessor (partial labels, activation policy, task mask)

``import espnet2_ext`` arranges for this to run as soon as ``espnet2.tasks.asr`` is imported (by us, by ESPnet's
own ``asr_inference``/``Speech2Text.from_pretrained``, or in a spawned DDP worker), without paying ESPnet's import
cost when only the light parts of the package (scoring, data prep) are used. It also routes ESPnet's unpacking
of packed models and its ``torch.load`` of model files through ``utils/safe_archive.py`` and ``utils/safe_load.py``
(issue 16).
"""

from __future__ import annotations

_done = False


def register() -> None:
    global _done
    if _done:
        return
    from espnet2.tasks import asr

    from espnet2_ext.asr.encoder.identity_encoder import IdentityEncoder
    from espnet2_ext.asr.frontend.task_conditioned_s3prl import TaskConditionedS3prlFrontend
    from espnet2_ext.asr.tokenverse_model import TokenVerseASRModel
    from espnet2_ext.train.preprocessor import TokenVersePreprocessor

    for choices, name, cls in (
        (asr.frontend_choices, "s3prl_tokenverse", TaskConditionedS3prlFrontend),
        (asr.encoder_choices, "identity", IdentityEncoder),
        (asr.model_choices, "tokenverse", TokenVerseASRModel),
        (asr.preprocessor_choices, "tokenverse", TokenVersePreprocessor),
    ):
        choices.classes.setdefault(name, cls)
    from espnet2_ext.utils.safe_load import install_espnet_guards

    install_espnet_guards()  # ESPnet's unpack and model-file torch.load: no code from the file, nothing outside
    _done = True
