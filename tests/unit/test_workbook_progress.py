"""The workbook's console while a training notebook runs: one line per epoch, read from the run folders' log.jsonl
(report/progress.py), without the kernel's help. A fake training step writes the files the Trainer writes."""

import json
import threading
import time

from ssmrec_lib.report.progress import EpochTail, epoch_line


def _record(epoch: int, loss: float, ndcg: float) -> str:
    return json.dumps({"epoch": epoch, "loss": loss, "valid": {"ndcg@10": ndcg, "hr@10": 2 * ndcg}}) + "\n"


def _fake_training_step(runs, epochs=3, pause=0.15):
    """What experiment.run_experiment and the Trainer write: config.json first, then one log line per epoch."""
    run = runs / "sasrec_synthetic_smoke_s0_abc"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": "sasrec", "train_config": {"epochs": epochs}}))
    for e in range(epochs):
        time.sleep(pause)
        with open(run / "log.jsonl", "a") as f:
            f.write(_record(e, 5.0 - e, 0.1 * (e + 1)))


def test_one_console_line_per_epoch_while_a_training_step_runs(tmp_path):
    runs = tmp_path / "runs"
    old = runs / "mamba4rec_synthetic_smoke_s0_def"  # an earlier run (reused, or resumed): not news
    old.mkdir(parents=True)
    (old / "log.jsonl").write_text(_record(0, 7.0, 0.01))
    printed, seen_during = [], []
    with EpochTail(runs, interval=0.05, printer=printed.append):
        step = threading.Thread(target=_fake_training_step, args=(runs,))
        step.start()
        step.join()
        time.sleep(0.3)
        seen_during = list(printed)  # lines appeared while the step ran, not only at its end
    assert printed == ["  sasrec epoch 1/3: loss 5.0000, valid ndcg@10 0.1000",
                       "  sasrec epoch 2/3: loss 4.0000, valid ndcg@10 0.2000",
                       "  sasrec epoch 3/3: loss 3.0000, valid ndcg@10 0.3000"]
    assert len(seen_during) == 3


def test_the_last_epoch_is_printed_on_exit_and_a_rewritten_epoch_again(tmp_path):
    runs = tmp_path / "runs"
    run = runs / "pop_x"
    run.mkdir(parents=True)
    (run / "log.jsonl").write_text(_record(0, 5.0, 0.1))
    printed = []
    with EpochTail(runs, interval=60, printer=printed.append):  # no poll before exit
        (run / "log.jsonl").write_text(_record(0, 4.5, 0.2) + _record(1, 4.0, 0.3) + '{"epoch": 2, "lo')
    # epoch 0 rewritten by a resume, epoch 1 new, the half-written line ignored; no config.json: the folder name
    assert printed == ["  pop_x epoch 1: loss 4.5000, valid ndcg@10 0.2000",
                       "  pop_x epoch 2: loss 4.0000, valid ndcg@10 0.3000"]


def test_epoch_line_without_validation():
    assert epoch_line({"epoch": 4, "loss": 1.23456}, "gpt4rec", 10) == "  gpt4rec epoch 5/10: loss 1.2346"
    assert epoch_line({"epoch": 0}, "m", None) == "  m epoch 1"


def test_llm_logs_count_from_one_and_a_repeated_epoch_prints_once(tmp_path):
    """LLM fine-tuning logs count epochs from 1 and LlamaRec logs epoch 1 of each of its two stages."""
    run = tmp_path / "runs" / "llamarec_x"
    run.mkdir(parents=True)
    printed = []
    with EpochTail(tmp_path / "runs", interval=0.05, printer=printed.append):
        (run / "config.json").write_text(json.dumps({"model": "llamarec", "backbone": {},
                                                     "train_config": {"epochs": 1}}))
        (run / "log.jsonl").write_text(json.dumps({"stage": "full LM", "epoch": 1, "loss": 6.0}) + "\n"
                                       + json.dumps({"stage": "LoRA ranking", "epoch": 1, "loss": 5.0}) + "\n")
        time.sleep(0.4)  # several polls of the unchanged file
    assert printed == ["  llamarec epoch 1/1 (full LM): loss 6.0000",
                       "  llamarec epoch 1/1 (LoRA ranking): loss 5.0000"]
