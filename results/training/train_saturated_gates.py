"""Experiment: lcnet-tvm train with saturation.patch applied and TrainConfig.saturation_weight set to argv[1]; argv[2:] is the CLI."""
import sys
from lcnet_tvm.cli import main
from lcnet_tvm.model import train_config
weight = float(sys.argv[1])
original = train_config.TrainConfig.__post_init__
def post(self):
    self.saturation_weight = weight
    original(self)
train_config.TrainConfig.__post_init__ = post
main(sys.argv[2:])
