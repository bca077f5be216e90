# Tiny CPU preset for tests and the demo: a narrow RTMDet-Ins at 160 px, trains in minutes on CPU.
_base_ = ['./rtmdet_ins_tiny.py']
ymir_preset = {'img_size': 160, 'augment': 'light', 'checkpoint': None,
               'description': 'narrow RTMDet-Ins for CPU tests and the demo'}
model = {'backbone': {'widen_factor': 0.25},
         'neck': {'in_channels': [64, 128, 256], 'out_channels': 64},
         'bbox_head': {'in_channels': 64, 'feat_channels': 64}}
