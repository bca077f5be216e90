"""Pieces shared by every task kind: OpenMMLab runtime helpers and the YMIR hooks."""
