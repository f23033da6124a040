// The architecture loaders registry.cpp maps general.architecture to (one per file).
#pragma once
#include <memory>

#include "backend/backend.h"
#include "model/model.h"

namespace wo {

using ArchLoader = std::unique_ptr<Model> (*)(std::shared_ptr<const gguf::File>, std::unique_ptr<Backend>);

std::unique_ptr<Model> load_gpt_oss(std::shared_ptr<const gguf::File> f, std::unique_ptr<Backend> be);
std::unique_ptr<Model> load_llama(std::shared_ptr<const gguf::File> f,
                                  std::unique_ptr<Backend> be);  // llama, qwen2, phi3
std::unique_ptr<Model> load_gpt2(std::shared_ptr<const gguf::File> f, std::unique_ptr<Backend> be);

}  // namespace wo
