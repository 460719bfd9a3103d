"""Train a TokenVerse++ model: ESPnet's ``asr_train`` with ``TokenVerseASRTask``.

    python -m espnet2_ext.bin.asr_train --config conf/train.yaml --train_data_path_and_name_and_type \
        dump/train/wav.scp,speech,sound --train_data_path_and_name_and_type dump/train/text,text,text \
        --train_data_path_and_name_and_type dump/train/utt2tasks,tasks,text ...

All of ESPnet's asr_train options are accepted.
"""

from __future__ import annotations

from espnet2_ext.tasks.tokenverse_asr import TokenVerseASRTask


def get_parser():
    return TokenVerseASRTask.get_parser()


def main(cmd=None):
    TokenVerseASRTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
