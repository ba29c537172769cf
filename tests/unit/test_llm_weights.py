"""Fine-tuned LLM weights in run folders: a finished run reloads (llm.weights) and gives the lists the run scored."""

import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from ssmrec_lib.data.synthetic import make_synthetic
from ssmrec_lib.errors import UserError
from ssmrec_lib.llm.experiment import run_llm_experiment
from ssmrec_lib.llm.runs import eval_users, evaluate_lists
from ssmrec_lib.llm.weights import load_run_recommender

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

    def refuse(*a, **k):
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def _tiny():
    return make_synthetic(n_users=40, n_items=30, min_len=5, max_len=12, seed=1)


def test_generative_run_reloads_to_the_same_lists_and_metrics(tmp_path):
    # GPT4Rec's path; MamRec shares it (Mamba's save/load: the identical-logits test below)
    data = _tiny()
    over = dict(max_eval_users=6, max_train_users=30, epochs=1)
    r = run_llm_experiment("gpt4rec", "synthetic", "smoke", 0, over, out=str(tmp_path), data=data)
    run_dir = tmp_path / r["run_id"]
    assert (run_dir / "backbone" / "model.safetensors").exists() and (run_dir / "backbone" / "tokenizer.json").exists()
    rec = load_run_recommender(run_dir, data=data)
    assert rec.backbone.pretrained is False and rec.backbone.name == r["backbone"]["name"]
    hist = data.split().test_history
    for ex in r["example_queries"]:  # the first 3 evaluation users, as scored in the run
        u = int(eval_users(len(hist), 6, 0)[r["example_queries"].index(ex)])
        assert rec.generate_queries(hist[u]) == ex["queries"]
        assert rec.recommend(hist[u]) == ex["list"]
    # the reloaded weights are the selected epoch's: the test metrics come back exactly
    split = data.split()
    users = eval_users(len(split.test_history), 6, 0)
    assert evaluate_lists(rec.recommend, split.test_history, split.test_target, users) == r["test"]


def test_llamarec_run_reloads_adapter_and_retriever_to_the_same_lists(tmp_path):
    data = _tiny()
    r = run_llm_experiment("llamarec", "synthetic", "smoke", 0, dict(max_eval_users=12, max_train_users=30),
                           out=str(tmp_path), data=data)
    run_dir = tmp_path / r["run_id"]
    assert (run_dir / "adapter" / "adapter_model.safetensors").exists()
    assert (run_dir / "backbone" / "model.safetensors").exists()  # from scratch: the stage-0 base is kept too
    # moved run tree: the retriever is found beside the run
    moved = tmp_path / "moved"
    shutil.copytree(tmp_path, moved, ignore=shutil.ignore_patterns("moved"))
    shutil.rmtree(Path(json.loads((run_dir / "config.json").read_text())["retriever_run"]))
    ranker = load_run_recommender(moved / r["run_id"], data=data)
    lora = [n for n, _ in ranker.model.named_parameters() if "lora_" in n]
    assert lora, "the adapter was not loaded"
    hist = data.split().test_history
    for ex in r["example_lists"]:
        assert ranker.recommend(hist[ex["user"]]) == ex["list"]
        assert len(ex["list"]) == 20 and len(set(ex["list"])) == 20


def test_reloading_a_sequence_run_or_a_folder_without_weights_says_why(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.json").write_text(json.dumps({"model": "sasrec", "dataset": "synthetic"}))
    with pytest.raises(UserError, match="no fine-tuned weights"):
        load_run_recommender(tmp_path / "a", data=_tiny())
    with pytest.raises(UserError, match="not a run folder"):
        load_run_recommender(tmp_path / "missing", data=_tiny())


def test_weight_files_in_run_folders_are_git_ignored():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["outputs/quick/runs/gpt4rec_ml-1m_quick_s0_x/backbone/model.safetensors",
             "outputs/runs/llamarec_ml-1m_quick_s0_x/adapter/adapter_model.safetensors",
             "outputs/full/runs/llamarec_ml-1m_full_s0_x/backbone/tokenizer.json",
             "outputs/smoke/runs/x/pytorch_model.bin", "outputs/quick/runs/x/checkpoint_best.pt"]
    out = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True)
    assert sorted(out.stdout.split()) == sorted(paths)
    kept = subprocess.run(["git", "check-ignore", "--no-index", "outputs/quick/runs/x/config.json"], cwd=ROOT,
                          capture_output=True, text=True)
    assert kept.returncode == 1, "run configs stay committed"


@pytest.mark.parametrize("arch", ["gpt2-tiny", "mamba-tiny", "llama-tiny"])
def test_saved_backbone_and_adapter_reload_to_identical_logits(tmp_path, arch):
    import torch
    from peft import PeftModel

    from ssmrec_lib.llm.backbones import load_backbone
    from ssmrec_lib.llm.llamarec import add_lora, lora_targets_for
    from ssmrec_lib.llm.runs import save_backbone
    from ssmrec_lib.llm.weights import load_lm

    torch.manual_seed(0)
    bb = load_backbone(arch, ["the quick brown fox", "a lazy dog jumps"], d_model=32, n_layers=1)
    x = torch.tensor([bb.tokenizer("the lazy fox", add_special_tokens=False)["input_ids"]])
    save_backbone(bb.model, bb.tokenizer, tmp_path / "backbone")
    model, tok = load_lm(tmp_path / "backbone")
    assert tok("the lazy fox", add_special_tokens=False)["input_ids"] == x[0].tolist()
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, bb.model.eval()(x).logits, rtol=0, atol=0)
        lora = add_lora(bb.model, 4, 8, 0.0, lora_targets_for(bb.model)).eval()
        for n, p in lora.named_parameters():
            if "lora_B" in n:
                p.add_(0.1 * torch.randn_like(p))  # lora_B starts at 0: make the adapter change the output
        assert not torch.allclose(lora(x).logits, model(x).logits)
        lora.save_pretrained(tmp_path / "adapter")
        back = PeftModel.from_pretrained(load_lm(tmp_path / "backbone")[0], tmp_path / "adapter").eval()
        torch.testing.assert_close(back(x).logits, lora(x).logits, rtol=0, atol=0)
