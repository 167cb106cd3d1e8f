// The serving contract (requests, outputs, sampling, `InferenceBackend`) is part of the
// engine's API: code that drives an engine sees it through `import Engine`.
@_exported import Serving
