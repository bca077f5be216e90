"""Resuming survives a last_checkpoint pointer to a file mmengine's clean-up already deleted."""
from ymir_tasks.common.runtime import resume_checkpoint


def test_resume_checkpoint_repairs_a_dangling_pointer(tmp_path):
    assert resume_checkpoint(str(tmp_path)) is None
    for n in (2, 10, 3):
        (tmp_path / f"epoch_{n}.pth").write_bytes(b"x")
    (tmp_path / "pretrained-fit.pth").write_bytes(b"x")
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "epoch_11.pth"))  # deleted by max_keep_ckpts
    assert resume_checkpoint(str(tmp_path)) == str(tmp_path / "epoch_10.pth")
    assert (tmp_path / "last_checkpoint").read_text() == str(tmp_path / "epoch_10.pth")
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "epoch_3.pth"))  # a valid pointer wins
    assert resume_checkpoint(str(tmp_path)) == str(tmp_path / "epoch_3.pth")
