"""Resuming survives a last_checkpoint pointer to a file mmengine's clean-up already deleted, and a
checkpoint truncated by a kill while it was written."""
import torch

from ymir_tasks.common.runtime import resume_checkpoint


def test_resume_checkpoint_repairs_a_dangling_pointer(tmp_path):
    assert resume_checkpoint(str(tmp_path)) is None
    for n in (2, 10, 3):
        torch.save({"n": n}, tmp_path / f"epoch_{n}.pth")
    (tmp_path / "pretrained-fit.pth").write_bytes(b"x")
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "epoch_11.pth"))  # deleted by max_keep_ckpts
    assert resume_checkpoint(str(tmp_path)) == str(tmp_path / "epoch_10.pth")
    assert (tmp_path / "last_checkpoint").read_text() == str(tmp_path / "epoch_10.pth")
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "epoch_3.pth"))  # a valid pointer wins
    assert resume_checkpoint(str(tmp_path)) == str(tmp_path / "epoch_3.pth")


def test_a_truncated_checkpoint_is_removed_and_the_previous_one_used(tmp_path):
    torch.save({"w": torch.zeros(1000)}, tmp_path / "epoch_1.pth")
    torch.save({"w": torch.zeros(1000)}, tmp_path / "epoch_2.pth")
    data = (tmp_path / "epoch_2.pth").read_bytes()
    (tmp_path / "epoch_2.pth").write_bytes(data[: len(data) // 2])  # killed while torch.save wrote it
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "epoch_1.pth"))
    assert resume_checkpoint(str(tmp_path)) == str(tmp_path / "epoch_1.pth")
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "epoch_2.pth"))
    (tmp_path / "epoch_2.pth").write_bytes(data[: len(data) // 2])
    assert resume_checkpoint(str(tmp_path)) == str(tmp_path / "epoch_1.pth")
    assert not (tmp_path / "epoch_2.pth").exists()
    assert (tmp_path / "last_checkpoint").read_text() == str(tmp_path / "epoch_1.pth")
    (tmp_path / "epoch_1.pth").write_bytes(b"")
    assert resume_checkpoint(str(tmp_path)) is None  # nothing complete left: start over


def test_checkpoints_are_trimmed_only_after_the_new_one_is_written(tmp_path):
    from types import SimpleNamespace

    from mmengine.config import Config

    from ymir_tasks.common.hooks import YmirKeepCheckpoints
    from ymir_tasks.common.mmconfig import apply_runtime
    from ymir_tasks.common.options import ArgsOptions

    # CheckpointHook keeps one spare (it deletes before writing); our hook trims after the write
    cfg = Config(dict())
    ctx = SimpleNamespace(env=SimpleNamespace(output=SimpleNamespace(tensorboard_dir=str(tmp_path))))
    apply_runtime(cfg, ctx, ArgsOptions(), work_dir=str(tmp_path), distributed=False, use_cuda=False, scope="mmdet",
                  visualizer="Visualizer", metric="mAP", patience=0, checkpoint=dict(interval=1, max_keep_ckpts=1),
                  log_interval=10, by_epoch=True)
    assert cfg.default_hooks.checkpoint.max_keep_ckpts == 2
    assert dict(type="YmirKeepCheckpoints", keep=1) in cfg.custom_hooks
    for n in (1, 2, 3):
        torch.save({"n": n}, tmp_path / f"epoch_{n}.pth")
    torch.save({}, tmp_path / "pretrained-fit.pth")
    YmirKeepCheckpoints(keep=1).after_train_epoch(SimpleNamespace(work_dir=str(tmp_path)))
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["epoch_3.pth", "pretrained-fit.pth"]
