"""Probe the CLI with bad inputs and faults, as a careless or hostile user would, and count the outcomes.

Run: python benchmarks/probe_bad_inputs.py [--workdir DIR]   (about 5 minutes on 2 CPU cores; tiny models only)

Every case runs `python -m obliviate ...` in a fresh process. An outcome is a *clear error* (exit 2, an
`error:` line, no traceback), a *traceback*, a *finished* run (exit 0: the input was odd but valid) or
*other* (any other exit code). After each case its output folder is searched for *unmarked leftovers*: run
directories whose status.json is missing or still says running. A run killed with -9 must read
`interrupted`. Writes benchmarks/results/bad_inputs.md (one row per case, with the first line of the message)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import write_result
from obliviate.core.rundir import read_status
from obliviate.models import load_model, save_model
from obliviate.render.markdown import markdown_table

FORGET = ["the quick brown fox jumps over the lazy dog and runs into the woods",
          "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod",
          "we hold these truths to be self-evident, that all men are created equal"]  # fmt: skip
REFERENCE = ["a green kettle whistled twice before the neighbours finally opened the door",
             "seven small boats drifted slowly past the harbour lights at half past nine",
             "the library closes early on thursdays, so bring the forms back on wednesday"]  # fmt: skip
FAST = ["--max-tokens", "24", "--neighbours", "0", "--set", "benchmark.utility.fluency_prompts=0", "--no-progress",
        "--no-save-model", "--max-steps", "2"]  # fmt: skip


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def inputs(root: Path) -> dict[str, str]:
    """Every file the cases use, good and bad."""
    f: dict[str, str] = {}
    model = save_model(load_model("tiny:3", device="cpu", dtype="float32"), root / "model")
    f["model"] = str(model)
    f["forget"] = _jsonl(root / "forget.jsonl", [{"id": f"f{i}", "text": t} for i, t in enumerate(FORGET)])
    f["ref"] = _jsonl(root / "ref.jsonl", [{"id": f"r{i}", "text": t} for i, t in enumerate(REFERENCE)])
    f["facts"] = _jsonl(root / "facts.jsonl", [{"question": "What is the capital of Zorbia?", "answer": "Quell"},
                                               {"question": "Who wrote Zed?", "answer": "Amy"}])  # fmt: skip
    f["assoc"] = _jsonl(root / "assoc.jsonl", [{"id": "a", "subject": "Zorbia", "object": "Quell", "answer_type": "city",  # noqa: E501
                                                "question": "What is the capital of Zorbia?",
                                                "heldout": ["Which city is Zorbia's capital?"]}])  # fmt: skip
    texts = {
        "empty.jsonl": "", "blank.jsonl": "\n\n", "badline.jsonl": '{"text": "ok"}\n{"text": oops}\n',
        "notext.jsonl": '{"body": "x"}\n', "nonstring.jsonl": '{"text": 5}\n', "emptytext.jsonl": '{"text": "  "}\n',
        "dupid.jsonl": '{"id": "a", "text": "x y z"}\n{"id": "a", "text": "u v w"}\n', "list.jsonl": "[1, 2]\n",
        "dict.json": json.dumps({"data": [{"text": "x"}]}), "quote.csv": 'id,text\n1,ok\n2,"open\n3,x\n',
        "notext.csv": "id,body\n1,x\n", "dupcol.csv": "text,text\nx,y\n", "wrong.xml": "<a/>",
        "noanswer.jsonl": '{"question": "Q?"}\n', "assoc_noheld.jsonl": json.dumps(
            {"id": "a", "subject": "S", "object": "O", "question": "Q?", "heldout": []}) + "\n",
        "yaml_bad.yaml": "method: [unclosed\n", "yaml_list.yaml": "- a\n- b\n", "yaml_unknown.yaml": "nonsense: 1\n",
        "yaml_type.yaml": "seed: many\n",
    }  # fmt: skip
    for name, text in texts.items():
        (root / name).write_text(text)
        f[name] = str(root / name)
    (root / "latin.yaml").write_bytes("method: sga\n# caf\xe9\n".encode("latin-1"))
    f["latin.yaml"] = str(root / "latin.yaml")
    (root / "binary.jsonl").write_bytes(bytes(range(256)))
    f["binary.jsonl"] = str(root / "binary.jsonl")
    (root / "a-file").write_text("x")
    f["a-file"] = str(root / "a-file")
    for name, keep in (("noconfig", ("model.safetensors",)), ("pickle", ("config.json",))):
        d = root / name
        d.mkdir()
        for item in model.iterdir():
            if item.name in keep or (name == "noconfig" and item.suffix != ".json"):
                (d / item.name).write_bytes(item.read_bytes())
        if name == "pickle":
            (d / "pytorch_model.bin").write_bytes(b"not really")
        f[name] = str(d)
    trunc = root / "truncated"
    trunc.mkdir()
    for item in model.iterdir():
        data = item.read_bytes()
        (trunc / item.name).write_bytes(data[: len(data) // 3] if item.suffix == ".safetensors" else data)
    f["truncated"] = str(trunc)
    f["garbage_ckpt"] = str(root)
    return f


def cases(f: dict[str, str]) -> list[tuple[str, list[str]]]:
    un = ["unlearn", f["forget"], "--reference", f["ref"], "--model", f["model"]]
    seq = lambda path: ["unlearn", f[path], "--reference", f["ref"], "--model", f["model"]]  # noqa: E731
    key = "sk-PROBE-0123456789abcdef"
    out = [
        *[(f"data: {name}", seq(name)) for name in ("empty.jsonl", "blank.jsonl", "badline.jsonl", "notext.jsonl",
                                                     "nonstring.jsonl", "emptytext.jsonl", "dupid.jsonl", "list.jsonl",
                                                     "dict.json", "quote.csv", "notext.csv", "dupcol.csv",
                                                     "wrong.xml", "binary.jsonl")],
        ("data: missing file", ["unlearn", "/nonexistent/x.jsonl", "--model", f["model"]]),
        ("data: directory as file", ["unlearn", f["garbage_ckpt"], "--reference", f["ref"], "--model", f["model"]]),
        ("data: qa without answer", ["unlearn", f["noanswer.jsonl"], "--benchmark", "qa", "--model", f["model"]]),
        ("data: association without heldout", ["unlearn", f["assoc_noheld.jsonl"], "--method", "unstar"]),
        ("data: reference = forget", ["unlearn", f["forget"], "--reference", f["forget"], "--model", f["model"]]),
        ("data: one reference sequence", [*un, "--limit", "1"]),
        ("config: bad YAML", [*un, "--config", f["yaml_bad.yaml"]]),
        ("config: YAML list", [*un, "--config", f["yaml_list.yaml"]]),
        ("config: unknown key", [*un, "--config", f["yaml_unknown.yaml"]]),
        ("config: wrong type", [*un, "--config", f["yaml_type.yaml"]]),
        ("config: not UTF-8", [*un, "--config", f["latin.yaml"]]),
        ("config: missing file", [*un, "--config", "/nonexistent.yaml"]),
        ("flag: --seed -1", [*un, "--seed", "-1"]),
        ("flag: --limit 0", [*un, "--limit", "0"]),
        ("flag: --max-tokens 1", [*un, "--max-tokens", "1"]),
        ("flag: --learning-rate -1", [*un, "--learning-rate", "-1"]),
        ("flag: unknown method", [*un, "--method", "magic"]),
        ("flag: unknown benchmark", [*un, "--benchmark", "magic"]),
        ("flag: unsupported cell", [*un, "--method", "idknll"]),
        ("flag: inapplicable flag", [*un, "--method", "sga", "--epochs", "3"]),
        ("flag: inapplicable key", ["unlearn", f["facts"], "--method", "npo", "--model", f["model"], "--set",
                                    "benchmark.max_steps=3"]),
        ("flag: --set without =", [*un, "--set", "nonsense"]),
        ("flag: --el-n 500", ["memorization", f["forget"], "--reference", f["ref"], "--model", f["model"], "--el-n",
                              "500"]),
        ("device: cuda:99", [*un, "--device", "cuda:99"]),
        ("device: tpu", [*un, "--device", "tpu"]),
        ("dtype: float16 on CPU", [*un, "--dtype", "float16"]),
        ("dtype: int8", [*un, "--dtype", "int8"]),
        ("model: missing dir", ["unlearn", f["forget"], "--reference", f["ref"], "--model", "/nonexistent/model"]),
        ("model: a file", ["unlearn", f["forget"], "--reference", f["ref"], "--model", f["a-file"]]),
        ("model: no config.json", ["unlearn", f["forget"], "--reference", f["ref"], "--model", f["noconfig"]]),
        ("model: pickle only", ["unlearn", f["forget"], "--reference", f["ref"], "--model", f["pickle"]]),
        ("model: truncated safetensors", ["unlearn", f["forget"], "--reference", f["ref"], "--model", f["truncated"]]),
        ("model: offline hub id", ["memorization", f["forget"], "--reference", f["ref"], "--model", "nobody/nothing"]),
        ("model: bad tiny seed", [*un[:-1], "tiny:x"]),
        ("output: a file", [*un, "--output-dir", f["a-file"]]),
        ("output: under a file", [*un, "--output-dir", f["a-file"] + "/sub"]),
        ("resume: not a checkpoint", [*un, "--resume", f["garbage_ckpt"]]),
        ("resume: missing", [*un, "--resume", "/nonexistent/ckpt"]),
        ("training: NaN weights after a step (lr 1e37)", [*un, "--method", "ga", "--learning-rate", "1e37", "--set",
                                                          "benchmark.stop=mean", "--set", "benchmark.tau=0.0"]),
        ("compare: nothing", ["compare", "/nonexistent/run"]),
        ("compare: a data folder", ["compare", f["garbage_ckpt"]]),
        ("secret: key in endpoint URL", ["antisamples", f["assoc"], "--model", "tiny", "--generator", "openai",
                                         "--endpoint", f"http://u:{key}@127.0.0.1:9/v1"]),
        ("secret: key in api_key_env", ["unlearn", f["assoc"], "--method", "unstar", "--model", "tiny", "--generator",
                                        "openai", "--set", "method.endpoint.base_url=http://127.0.0.1:9/v1",
                                        "--set", f"method.endpoint.api_key_env={key}"]),
        ("endpoint: dead, fallback on", ["antisamples", f["assoc"], "--model", "tiny", "--generator", "openai",
                                         "--endpoint", "http://127.0.0.1:9/v1", "--set", "endpoint.timeout=2"]),
        ("markup: [/x] in the output path", [*un, "--output-dir", "{out}/[/x] [draft]"]),
    ]  # fmt: skip
    # the fast memorization settings go first, so that a case's own flag (e.g. --max-tokens 1) wins
    return [(name, [args[0], *FAST, *args[1:]] if args[0] == "unlearn" and "--reference" in args else args)
            for name, args in out]  # fmt: skip


def run_case(args: list[str], out: Path) -> dict:
    args = [a.replace("{out}", str(out)) for a in args]
    if "--output-dir" not in args and args[0] != "compare":
        args += ["--output-dir", str(out)]
    if args[0] == "compare":
        args += ["--output-dir", str(out)]
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "obliviate", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    text = proc.stdout + proc.stderr
    if "Traceback (most recent call last)" in text:
        outcome = "traceback"
    elif proc.returncode == 2 and "error:" in text:
        outcome = "clear error"
    elif proc.returncode == 0:
        outcome = "finished"
    else:
        outcome = f"other (exit {proc.returncode})"
    message = next((line.strip() for line in text.splitlines() if line.strip().startswith("error:")), "")
    return {"outcome": outcome, "message": message, "unmarked": unmarked(out), "seconds": time.perf_counter() - started}


def unmarked(out: Path) -> int:
    """Run directories under ``out`` that do not say how they ended (no status, or still 'running')."""
    count = 0
    for status_owner in [p for p in out.rglob("*") if p.is_dir() and (p / "run.log").exists()]:
        status = read_status(status_owner)
        count += status is None or status["status"] not in ("finished", "failed", "interrupted")
    return count


def killed_run(f: dict[str, str], out: Path) -> dict:
    """A run killed with -9 in the middle: its directory must read 'interrupted'."""
    args = ["unlearn", f["forget"], "--reference", f["ref"], "--model", f["model"], "--method", "ga", "--max-steps",
            "500", "--set", "benchmark.stop=mean", "--set", "benchmark.tau=0.0", "--max-tokens", "24",
            "--neighbours", "0", "--no-progress", "--no-save-model", "--output-dir", str(out)]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "obliviate", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("*/trace.jsonl")):
        time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    statuses = [read_status(d) for d in out.iterdir()]
    marked = all(s is not None and s["status"] == "interrupted" for s in statuses) and bool(statuses)
    return {"outcome": "marked interrupted" if marked else "UNMARKED", "message": "", "unmarked": int(not marked),
            "seconds": 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="where the inputs and outputs go [a temporary folder]")
    args = parser.parse_args()
    root = Path(args.workdir or tempfile.mkdtemp(prefix="obliviate-probe-"))
    root.mkdir(parents=True, exist_ok=True)
    f = inputs(root / "inputs")
    rows, counts = [], {}
    for k, (name, case_args) in enumerate(cases(f)):
        result = run_case(case_args, root / f"out-{k:02d}")
        rows.append((name, result))
        print(f"{name:40s} {result['outcome']:14s} {result['message'][:110]}", flush=True)
    rows.append(("fault: run killed with -9", killed_run(f, root / "out-killed")))
    for _, r in rows:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    leftovers = sum(r["unmarked"] for _, r in rows)
    table = markdown_table(["case", "outcome", "unmarked run dirs", "message (first line)"],
                           [[n, r["outcome"], r["unmarked"], r["message"][:160]] for n, r in rows])  # fmt: skip
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    body = (f"{len(rows)} cases: {summary}; unmarked leftover run directories: {leftovers}.\n\n{table}\n"
            "A *finished* outcome is a run that the input did not prevent (the dead endpoint falls back to the "
            "template backend; odd output paths are printed as given).\n")  # fmt: skip
    print(body.splitlines()[0])
    print("wrote", write_result("bad_inputs", "Bad inputs and faults through the CLI", body))


if __name__ == "__main__":
    main()
