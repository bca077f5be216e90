# A tiny PointPillars for CPU tests and the demo: 0.32 m pillars over the synthetic scenes'
# 40.96 x 40.96 m (a 128 x 128 grid), narrow layers, one conv per stage.
_base_ = ['./pointpillars.py']
ymir_preset = dict(point_cloud_range=[0, -20.48, -3, 40.96, 20.48, 1], voxel_size=[0.32, 0.32], lr=0.003,
                   checkpoint=None)  # too narrow for PointPillars' KITTI weights
model = dict(
    data_preprocessor=dict(voxel_layer=dict(max_num_points=16, max_voxels=(8000, 8000))),
    voxel_encoder=dict(feat_channels=[32]),
    middle_encoder=dict(in_channels=32),
    backbone=dict(in_channels=32, layer_nums=[1, 1, 1], out_channels=[32, 64, 64]),
    neck=dict(in_channels=[32, 64, 64], out_channels=[32, 32, 32]),
    bbox_head=dict(in_channels=96, feat_channels=96))
