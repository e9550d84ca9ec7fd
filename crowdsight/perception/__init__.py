"""Perception: people/object detection, crowd density, faces.

Modules (import the one you need; nothing heavy is loaded here):

* `crowdsight.perception.detector` — the `Detector` contract (``detect(frame) ->
  Detections``), the bundled SSDLite people detector and `build_detector`.
* `crowdsight.perception.yolo` — bring-your-own YOLOv5/v8/11/YOLOX ONNX exports.
* `crowdsight.perception.slicing` — tiled inference for small people in large frames.
* `crowdsight.perception.density` — CSRNet crowd density maps.
"""
