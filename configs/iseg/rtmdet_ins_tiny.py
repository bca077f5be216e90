# RTMDet-Ins-tiny (the default preset): real-time instance segmentation, 640 input; RTMDet-tiny's
# backbone and neck (configs/det) with the instance head.
# The executor fills in num_classes, data, schedule and hooks (ymir_tasks/iseg/config.py).
_base_ = ['../det/rtmdet_tiny.py']
ymir_preset = {'description': 'RTMDet-Ins-tiny, real-time instance segmentation',
               # COCO-trained weights (mmdet's rtmdet metafile); the image bakes them into /app/weights
               'checkpoint': 'https://download.openmmlab.com/mmdetection/v3.0/rtmdet/rtmdet-ins_tiny_8xb32-300e_coco/'
                             'rtmdet-ins_tiny_8xb32-300e_coco_20221130_151727-ec670f7e.pth'}
model = {'bbox_head': {'_delete_': True,
                       'type': 'RTMDetInsSepBNHead',
                       'num_classes': 80,
                       'in_channels': 96,
                       'stacked_convs': 2,
                       'share_conv': True,
                       'pred_kernel_size': 1,
                       'feat_channels': 96,
                       'act_cfg': {'type': 'SiLU', 'inplace': True},
                       'norm_cfg': {'type': 'BN', 'requires_grad': True},
                       'anchor_generator': {'type': 'MlvlPointGenerator', 'offset': 0, 'strides': [8, 16, 32]},
                       'bbox_coder': {'type': 'DistancePointBBoxCoder'},
                       'loss_cls': {'type': 'QualityFocalLoss', 'use_sigmoid': True, 'beta': 2.0, 'loss_weight': 1.0},
                       'loss_bbox': {'type': 'GIoULoss', 'loss_weight': 2.0},
                       'loss_mask': {'type': 'DiceLoss', 'loss_weight': 2.0, 'eps': 5e-06, 'reduction': 'mean'}},
         'test_cfg': {'nms_pre': 1000, 'score_thr': 0.05, 'nms': {'type': 'nms', 'iou_threshold': 0.6},
                      'mask_thr_binary': 0.5}}
