# PointPillars (Lang et al. 2019) as mmdet3d's KITTI 3-class config: 0.16 m pillars over
# 69.12 x 79.36 m. Range, pillar size, class count and anchors (per-class mean size and bottom
# height from the training labels) are set by ymir_tasks/det3d/config.py.
ymir_preset = dict(point_cloud_range=[0, -39.68, -3, 69.12, 39.68, 1], voxel_size=[0.16, 0.16], lr=0.001,
                   # KITTI 3-class weights (mmdet3d's pointpillars metafile); baked into /app/weights
                   checkpoint='https://download.openmmlab.com/mmdetection3d/v1.0.0_models/pointpillars/'
                              'hv_pointpillars_secfpn_6x8_160e_kitti-3d-3class/'
                              'hv_pointpillars_secfpn_6x8_160e_kitti-3d-3class_20220301_150306-37dc2420.pth')
model = dict(
    type='VoxelNet',
    data_preprocessor=dict(type='Det3DDataPreprocessor', voxel=True,
                           voxel_layer=dict(max_num_points=32, point_cloud_range=None, voxel_size=None,
                                            max_voxels=(16000, 40000))),
    voxel_encoder=dict(type='PillarFeatureNet', in_channels=4, feat_channels=[64], with_distance=False,
                       voxel_size=None, point_cloud_range=None),
    middle_encoder=dict(type='PointPillarsScatter', in_channels=64, output_shape=None),
    backbone=dict(type='SECOND', in_channels=64, layer_nums=[3, 5, 5], layer_strides=[2, 2, 2],
                  out_channels=[64, 128, 256]),
    neck=dict(type='SECONDFPN', in_channels=[64, 128, 256], upsample_strides=[1, 2, 4],
              out_channels=[128, 128, 128]),
    bbox_head=dict(
        type='Anchor3DHead', num_classes=3, in_channels=384, feat_channels=384, use_direction_classifier=True,
        assign_per_class=True,
        anchor_generator=dict(type='AlignedAnchor3DRangeGenerator', ranges=None, sizes=None,
                              rotations=[0, 1.57], reshape_out=False),
        diff_rad_by_sin=True, bbox_coder=dict(type='DeltaXYZWLHRBBoxCoder'),
        loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='mmdet.SmoothL1Loss', beta=1.0 / 9.0, loss_weight=2.0),
        loss_dir=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=0.2)),
    train_cfg=dict(assigner=None, allowed_border=0, pos_weight=-1, debug=False),
    test_cfg=dict(use_rotate_nms=True, nms_across_levels=False, nms_thr=0.01, score_thr=0.1, min_bbox_size=0,
                  nms_pre=100, max_num=50))
