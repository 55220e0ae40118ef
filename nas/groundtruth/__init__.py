"""Ground truth measured by others, shipped with the package (nas/data/groundtruth/, licences beside it).

- `accel`: Accel-NASBench's MnasNet-space networks trained on ImageNet (top-1, FPGA latencies) and a
  surrogate of them for the rest of the space;
- `ofa`: once-for-all's MobileNetV3-space ImageNet accuracy predictor and its specialised networks;
- `proxy`: both as accuracy proxies (`accel-imagenet`, `ofa-imagenet`).

Every number from here is someone else's measurement or model: outputs say which, and never call a
predicted top-1 measured.
"""
from nas.groundtruth.records import FPGA_DEVICES
from nas.runtime.registry import DEVICES

def _fpga(name: str, threads: int = 1):
    # deferred: loads scikit-learn (~3 s), for an FPGA device only
    from nas.groundtruth.surrogate import AccelFpgaDevice

    return AccelFpgaDevice(name)


for _name in FPGA_DEVICES:
    DEVICES.register(_name, _fpga, help="Accel-NASBench's FPGA latencies (measured by its authors; a per-layer "
                     "model between records); networks of its MnasNet space only")
