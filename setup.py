"""espnet2_ext: TokenVerse++ (task-conditioned XLSR-Transducer) for ESPnet2."""
from setuptools import find_packages, setup

setup(
    name="espnet2_ext",
    version="0.1.0",
    description="TokenVerse++ for ESPnet2: task vectors, partial labels and task tokens on an XLSR-Transducer",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["espnet2_ext", "espnet2_ext.*"]),
    install_requires=[
        "torch==2.9.1",
        "torchaudio==2.9.1",
        "espnet[train]==202511",
        "espnet-s3prl==2026.5.14",
        "jiwer>=4.0",
        "kaldiio>=2.18",
        "soundfile>=0.12",
        "sentencepiece==0.2.0",
        "matplotlib",
        "setuptools<74",
    ],
    extras_require={"test": ["pytest"]},
)
