"""Importing the package (and ESPnet's ASR task, S3PRL through it) opens no network connection."""
import subprocess
import sys
import textwrap

GUARD = textwrap.dedent("""
    import socket
    attempts = []
    def _refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise OSError("network disabled by test")
    socket.socket.connect = _refuse
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
