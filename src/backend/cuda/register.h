// Makes "cuda" a backend name load_model() accepts (static libraries drop self-registering
// objects, so a CUDA build calls this once at start: the CLI and the GPU tests do).
#pragma once

namespace wo::cuda {

void register_backend();

}  // namespace wo::cuda
