"""Per-layer numerics: where an exported model starts to differ from the PyTorch module it was exported from.

The whole-output parity check (:mod:`mobileseg.parity`) says *whether* an artifact computes the model; this package
says *where* it stops doing so. Steps, one module each:

* :mod:`.torch_capture`: forward hooks on the exported (BN-folded) ``model.pt``: every module's output, in order;
* :mod:`.runtime_capture`: every intermediate tensor of the artifact in its own runtime, its adapter's
  ``intermediates`` (ONNX: all node outputs added as graph outputs; ncnn: every blob extracted; LiteRT:
  ``experimental_preserve_all_tensors``);
* :mod:`.names`: the module paths the converters keep in tensor names (ONNX node scopes, litert-torch tensor names);
* :mod:`.match`: runtime tensors to modules, by name where it survived, else by graph order, shape and a numeric
  test; layouts (NCHW/NHWC) aligned; fused modules (BN folded, activations fused into convs) listed as such;
* :mod:`.metrics`, :mod:`.layer_report`, :mod:`.plot`: rel-L2, cosine, SQNR, max abs; the first diverging layer; the
  table, the JSON beside the export and the error-vs-depth plot (numpy/matplotlib only: no torch, no runtime);
* :mod:`.inject`: faults written into an artifact (tests of this package; a user's sanity check);
* :mod:`.device_capture`: the same capture on an ADB device, through the device harnesses;
* :mod:`.failed_cell`: what a bench cell that failed parity records about where it diverged.

Entry point: :func:`mobileseg.numerics.analyze.per_layer`.
"""
