# Fast-SCNN (the default preset): fast on GPU and CPU, good for real-time segmentation.
ymir_preset = dict(img_size=(1024, 512), lr=0.12, description='Fast-SCNN, real-time segmentation',
                   # Cityscapes-trained weights (mmseg's fastscnn metafile); baked into /app/weights
                   checkpoint='https://download.openmmlab.com/mmsegmentation/v0.5/fast_scnn/'
                              'fast_scnn_lr0.12_8x4_160k_cityscapes/'
                              'fast_scnn_lr0.12_8x4_160k_cityscapes_20210630_164853-0cec9937.pth')
norm_cfg = dict(type='BN', requires_grad=True, momentum=0.01)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0, seg_pad_val=255),
    backbone=dict(
        type='FastSCNN', downsample_dw_channels=(32, 48), global_in_channels=64,
        global_block_channels=(64, 96, 128), global_block_strides=(2, 2, 1), global_out_channels=128,
        higher_in_channels=64, lower_in_channels=128, fusion_out_channels=128, out_indices=(0, 1, 2),
        norm_cfg=norm_cfg, align_corners=False),
    decode_head=dict(
        type='DepthwiseSeparableFCNHead', in_channels=128, channels=128, concat_input=False, num_classes=2,
        in_index=-1, norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=[
        dict(type='FCNHead', in_channels=128, channels=32, num_convs=1, num_classes=2, in_index=-2,
             norm_cfg=norm_cfg, concat_input=False, align_corners=False,
             loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
        dict(type='FCNHead', in_channels=64, channels=32, num_convs=1, num_classes=2, in_index=-3,
             norm_cfg=norm_cfg, concat_input=False, align_corners=False,
             loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    ],
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
