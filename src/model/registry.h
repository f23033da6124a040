// The architecture loaders and tensor lists registry.cpp maps general.architecture to (one per file).
#pragma once
#include <memory>

#include "backend/backend.h"
#include "model/model.h"
#include "model/tensors.h"

namespace wo {

using ArchLoader = std::unique_ptr<Model> (*)(std::shared_ptr<const gguf::File>, std::unique_ptr<Backend>);

std::unique_ptr<Model> load_gpt_oss(std::shared_ptr<const gguf::File> f, std::unique_ptr<Backend> be);
std::unique_ptr<Model> load_llama(std::shared_ptr<const gguf::File> f,
                                  std::unique_ptr<Backend> be);  // llama, qwen2, phi3
std::unique_ptr<Model> load_gpt2(std::shared_ptr<const gguf::File> f, std::unique_ptr<Backend> be);

// Their tensor lists (model/tensors.h).
std::vector<TensorSpec> gpt_oss_tensors(const Hparams& hp, const TensorLayout& l);
std::vector<TensorSpec> llama_tensors(const Hparams& hp, const TensorLayout& l);
std::vector<TensorSpec> gpt2_tensors(const Hparams& hp, const TensorLayout& l);

}  // namespace wo
