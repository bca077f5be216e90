# Tiny CPU preset for tests and the demo: a narrow Fast-SCNN, trains in minutes on CPU.
# The executor fills in num_classes, data, schedule and hooks (ymir_tasks/seg/config.py).
ymir_preset = dict(img_size=(128, 96), lr=0.05, augment='light',
                   description='narrow Fast-SCNN for CPU tests and the demo')
norm_cfg = dict(type='BN', requires_grad=True, momentum=0.01)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0, seg_pad_val=255),
    backbone=dict(
        type='FastSCNN', downsample_dw_channels=(16, 24), global_in_channels=32,
        global_block_channels=(32, 48, 64), global_block_strides=(2, 2, 1), global_out_channels=64,
        higher_in_channels=32, lower_in_channels=64, fusion_out_channels=64, out_indices=(0, 1, 2),
        norm_cfg=norm_cfg, align_corners=False),
    decode_head=dict(
        type='DepthwiseSeparableFCNHead', in_channels=64, channels=64, concat_input=False, num_classes=2,
        in_index=-1, norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
