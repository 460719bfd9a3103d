"""Hugging Face model card (``README.md``) for a packed TokenVerse++ model.

The card is built from the packed ``config.yaml`` (task list, training-setup summary), ``meta.yaml`` (versions),
an optional ``RESULTS.md`` copied verbatim, and the list of files in the upload folder. Its front matter uses the
Hub's metadata keys (``library_name: espnet`` makes the Hub show ESPnet's loading snippet).
"""

from __future__ import annotations

from typing import List, Mapping, Optional, Sequence, Tuple

import yaml

from espnet2_ext.task_spec import DEFAULT_LANGUAGES, PRIMARY_TASK, TaskSpec

PAPER_URL = "https://arxiv.org/abs/2508.19856"
CITATION_TOKENVERSEPP = """@article{kumar2025tokenversepp,
  title   = {{TokenVerse++}: Towards Flexible Multitask Learning with Dynamic Task Activation},
  author  = {Kumar, Shashi and others},
  journal = {arXiv preprint arXiv:2508.19856},
  year    = {2025}
}"""
CITATION_ESPNET = """@inproceedings{watanabe2018espnet,
  title     = {{ESPnet}: End-to-End Speech Processing Toolkit},
  author    = {Watanabe, Shinji and Hori, Takaaki and Karita, Shigeki and Hayashi, Tomoki and Nishitoba, Jiro and
               Unno, Yuya and Enrique Yalta Soplin, Nelson and Heymann, Jahn and Wiesner, Matthew and Chen, Nanxin
               and Renduchintala, Adithya and Ochiai, Tsubasa},
  booktitle = {Proc. Interspeech},
  pages     = {2207--2211},
  year      = {2018}
}"""
TASK_MEANING = {
    PRIMARY_TASK: "speech recognition (the words; always active)",
    "scd": "speaker change detection: a token where the speaker changes",
    "endp": "endpointing: a token at the end of each speaker turn",
    "ner": "named entities: each entity's words enclosed in open/close tokens",
    "lid": "language identification: one language token first",
}


def task_spec_of_config(config: Mapping) -> TaskSpec:
    """The model's tasks, as the training task read them (``tokenverse_conf``, else ``preprocessor_conf``)."""
    conf = dict(config.get("preprocessor_conf") or {})
    conf.update({k: v for k, v in (config.get("tokenverse_conf") or {}).items() if v is not None})
    return TaskSpec.build(conf.get("tasks"), conf.get("languages") or DEFAULT_LANGUAGES, conf.get("extra_tokens"))


def _fmt(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items() if not isinstance(v, (dict, list)))
    return "`none`" if value is None else f"`{value}`"


def _with_conf(name, conf) -> str:
    detail = _fmt(conf or {})
    return _fmt(name) + (f"; {detail}" if detail else "")


def config_summary(config: Mapping) -> List[Tuple[str, str]]:
    """(item, value) rows of the settings that matter when reading results; absent settings are skipped."""
    rows: List[Tuple[str, str]] = []
    front = dict(config.get("frontend_conf") or {})
    inner = dict(front.pop("frontend_conf", None) or {})
    front.pop("upstream_skeleton", None)  # large and only needed to rebuild the upstream
    if config.get("frontend"):
        upstream = inner.get("upstream")
        rows.append(
            (
                "frontend",
                _fmt(config["frontend"])
                + (f" (upstream `{upstream}`)" if upstream else "")
                + (f"; {_fmt(front)}" if front else ""),
            )
        )
    for key in ("encoder", "decoder", "model"):
        if config.get(key):
            rows.append((key, _with_conf(config[key], config.get(f"{key}_conf"))))
    if config.get("joint_net_conf"):
        rows.append(("joint network", _fmt(config["joint_net_conf"])))
    tokens = config.get("token_list")
    n_tokens = f"{len(tokens)} tokens" if isinstance(tokens, list) else f"token list {tokens}"
    if config.get("token_type"):
        rows.append(
            (
                "output units",
                f"{_fmt(config['token_type'])}, {n_tokens}"
                + (f", model {_fmt(config['bpemodel'])}" if config.get("bpemodel") else ""),
            )
        )
    policy = (config.get("tokenverse_conf") or {}).get("policy") or (config.get("preprocessor_conf") or {}).get(
        "policy"
    )
    if policy:
        rows.append(("task activation policy (training)", _fmt(policy)))
    if config.get("optim"):
        rows.append(("optimizer", _with_conf(config["optim"], config.get("optim_conf"))))
    if config.get("scheduler"):
        rows.append(("scheduler", _with_conf(config["scheduler"], config.get("scheduler_conf"))))
    # ESPnet reads batch_bins for numel/length batching and batch_size otherwise; show only the one in use
    size_key = "batch_bins" if config.get("batch_type") in ("numel", "length") else "batch_size"
    batch = {k: config[k] for k in ("batch_type", size_key, "accum_grad") if config.get(k)}
    if batch:
        rows.append(("batching", _fmt(batch)))
    if config.get("max_epoch"):
        rows.append(("epochs", _fmt(config["max_epoch"])))
    return rows


def _task_table(spec: TaskSpec) -> List[str]:
    out = [
        "| task | tokens | what it marks |",
        "|---|---|---|",
        f"| `{PRIMARY_TASK}` | (words) | {TASK_MEANING[PRIMARY_TASK]} |",
    ]
    for task, toks in spec.aux_tokens.items():
        out.append(f"| `{task}` | {' '.join(f'`{t}`' for t in toks)} | {TASK_MEANING.get(task, 'custom task')} |")
    return out


def build_model_card(
    repo_id: str,
    config: Mapping,
    files: Sequence[str],
    results_md: Optional[str] = None,
    meta: Optional[Mapping] = None,
    config_path: str = "exp/.../config.yaml",
    model_path: str = "exp/.../model.pth",
) -> str:
    """Markdown model card; ``files`` are the paths (relative to the repo root) that will be uploaded."""
    spec = task_spec_of_config(config)
    languages = list(spec.languages) or list(DEFAULT_LANGUAGES)
    front = {
        "library_name": "espnet",
        "license": "cc-by-4.0",
        "language": languages,
        "pipeline_tag": "automatic-speech-recognition",
        "tags": ["espnet", "audio", "automatic-speech-recognition", "rnn-transducer", "tokenverse", "multitask"],
    }
    meta = dict(meta or {})
    versions = ", ".join(f"{k} {meta[k]}" for k in ("espnet", "torch") if meta.get(k))
    example = "[EN] hello [NE] maria [/NE] how are you [ENDP] [SCD] fine thanks [ENDP]"
    lines = (
        [
            "---",
            yaml.safe_dump(front, sort_keys=False).rstrip(),
            "---",
            "",
            f"# TokenVerse++ XLSR-Transducer: `{repo_id}`",
            "",
            "One RNN-Transducer (ESPnet2, S3PRL XLSR/wav2vec2 encoder) that transcribes speech and marks it with task "
            "tokens in the same output. Learnable task vectors condition the encoder, so the tasks to run are "
            f"chosen at inference time (dynamic task activation), following TokenVerse++ ([arXiv 2508.19856]"
            f"({PAPER_URL})). Example output with every task active:",
            "",
            f"    {example}",
            "",
            "## Tasks",
            "",
        ]
        + _task_table(spec)
        + ["", "## Training setup", "", "| item | value |", "|---|---|"]
    )
    lines += [f"| {k} | {v} |" for k, v in config_summary(config)]
    if versions:
        lines += ["", f"Packed with {versions}."]
    lines += ["", "## Results", ""]
    lines += (
        [results_md.strip()]
        if results_md and results_md.strip()
        else ["No results were given when this card was written."]
    )
    lines += _usage(repo_id, config_path, model_path)
    lines += [f"- `{f}`" for f in files]
    lines += [
        "",
        "<details><summary>Full training config</summary>",
        "",
        "```yaml",
        yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True).rstrip(),
        "```",
        "",
        "</details>",
        "",
        "## Citation",
        "",
        "```bibtex",
        CITATION_TOKENVERSEPP,
        "",
        CITATION_ESPNET,
        "```",
        "",
    ]
    return "\n".join(lines)


def _usage(repo_id: str, config_path: str, model_path: str) -> List[str]:
    """The card's "How to use" section: ESPnet's model zoo, or the inference CLI on downloaded files."""
    return [
        "",
        "## How to use",
        "",
        "Install ESPnet and this project's `espnet2_ext` package, then either let ESPnet's model zoo fetch "
        "the model (`pip install espnet_model_zoo`):",
        "",
        "```python",
        "import espnet2_ext  # registers the TokenVerse++ classes with ESPnet (and keeps its import offline)",
        "import soundfile",
        "from espnet2.bin.asr_inference import Speech2Text",
        "",
        f'speech2text = Speech2Text.from_pretrained("{repo_id}")',
        'speech, rate = soundfile.read("speech.wav")  # 16 kHz mono',
        "text, tokens, token_ids, hyp = speech2text(speech)[0]",
        "print(text)",
        "```",
        "",
        "or download the files and decode a Kaldi-style data dir with the project's inference CLI:",
        "",
        "```bash",
        f"hf download {repo_id} --local-dir {repo_id.split('/')[-1]}",
        f"cd {repo_id.split('/')[-1]}",
        "python -m espnet2_ext.bin.asr_inference \\",
        f"    --asr_train_config {config_path} \\",
        f"    --asr_model_file {model_path} \\",
        "    --data_path_and_name_and_type data/test/wav.scp,speech,sound --output_dir decode_test",
        "```",
        "",
        "Paths inside the config are relative to the repository root: run from there.",
        "",
        "## Files",
        "",
    ]
