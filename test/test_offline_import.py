"""Importing the package (and ESPnet's ASR task, S3PRL through it) opens no network connection."""

import subprocess
import sys
import textwrap

GUARD = textwrap.dedent("""
    import socket
    attempts = []
    _connect = socket.socket.connect
    def _refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise OSError("network disabled by test")
    def _connect_local_only(self, address, *args):
        if self.family == getattr(socket, "AF_UNIX", None):  # local IPC (DataLoader workers) is not network
            return _connect(self, address, *args)
        return _refuse(self, address)
    socket.socket.connect = _connect_local_only
    socket.socket.connect_ex = _refuse
    socket.create_connection = _refuse
    socket.getaddrinfo = _refuse
""")


def run_guarded(body: str) -> subprocess.CompletedProcess:
    code = GUARD + textwrap.dedent(body) + "\nprint('ATTEMPTS', attempts)\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_import_opens_no_connection_and_prints_no_download_errors():
    r = run_guarded("""
        import espnet2_ext
        import espnet2.tasks.asr as asr
        import s3prl.nn
        assert "s3prl_tokenverse" in asr.frontend_choices.classes  # registered on ESPnet's import
        assert "tokenverse" in asr.model_choices.classes
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ATTEMPTS []" in r.stdout
    assert "nltk" not in r.stderr.lower(), r.stderr[-2000:]


def test_without_the_guard_espnet_would_try_to_download():
    """The problem is real: importing ESPnet's ASR task without our package triggers nltk.download."""
    r = run_guarded("""
        import nltk
        calls = []
        nltk.download = lambda *a, **k: calls.append(a) or False
        import espnet2.tasks.asr
        print("DOWNLOADS", len(calls))
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    import re

    n = int(re.search(r"DOWNLOADS (\d+)", r.stdout).group(1))
    assert n > 0


def test_training_and_decoding_open_no_connection(tmp_path):
    """A tiny training run and a decode through the real CLIs, with every socket connection refused."""
    here = str(__import__("pathlib").Path(__file__).parent)
    r = run_guarded(f"""
        import sys
        sys.path.insert(0, {here!r})
        from pathlib import Path
        import tiny_setup as ts
        import espnet2_ext
        from espnet2_ext.bin.asr_train import main as train
        from espnet2_ext.bin.asr_inference import run as decode
        root = Path({str(tmp_path)!r})
        standin = ts.write_standin(root / "tiny.pt")
        data = ts.write_data_dir(root)
        cfg = ts.write_config(root, standin, max_epoch=1, num_iters_per_epoch=2, num_att_plot=0)
        train(ts.train_args(root, data, cfg, root / "exp"))
        decode(["--asr_train_config", str(root / "exp/config.yaml"), "--asr_model_file",
                str(root / "exp/valid.loss.best.pth"), "--output_dir", str(root / "dec"),
                "--data_path_and_name_and_type", f"{{data}}/wav.scp,speech,sound"])
        assert (root / "dec/1best_recog/text").exists()
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ATTEMPTS []" in r.stdout
