#include "data/sentencepiece_bpe.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <fstream>

namespace isoflop::data {

std::string TrainBpe(const std::string& input, const std::string& model_prefix,
                     int vocab_size, int threads) {
  return TrainBpe(
      input, model_prefix,
      BpeTrainOptions{.vocab_size = vocab_size, .threads = threads});
}

std::string TrainBpe(const std::string& input, const std::string& model_prefix,
                     const BpeTrainOptions& o) {
  std::string args =
      "--input=" + input + " --model_prefix=" + model_prefix +
      " --vocab_size=" + std::to_string(o.vocab_size) +
      " --model_type=bpe --character_coverage=1.0 --num_threads=" +
      std::to_string(o.threads) +
      " --input_sentence_size=" + std::to_string(o.input_sentence_size) +
      " --shuffle_input_sentence=true --minloglevel=2";
  if (o.keep_whitespace) {
    args +=
        " --normalization_rule_name=identity --remove_extra_whitespaces=false"
        " --allow_whitespace_only_pieces=true";
  }
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  return status.ok() ? "" : status.ToString();
}

std::string WriteVocabFile(const std::string& model_path,
                           const std::string& vocab_path) {
  sentencepiece::SentencePieceProcessor processor;
  const auto status = processor.Load(model_path);
  if (!status.ok()) return model_path + ": " + status.ToString();
  std::ofstream out(vocab_path, std::ios::binary);
  for (int id = 0; id < processor.GetPieceSize(); ++id) {
    out << processor.IdToPiece(id) << '\t' << processor.GetScore(id) << '\n';
  }
  out.close();
  return out ? "" : vocab_path + ": write failed";
}

struct BpeEncoder::Impl {
  sentencepiece::SentencePieceProcessor processor;
};

BpeEncoder::BpeEncoder(const std::string& model_path) : impl_(new Impl) {
  const auto status = impl_->processor.Load(model_path);
  if (!status.ok()) error_ = model_path + ": " + status.ToString();
}

BpeEncoder::~BpeEncoder() { delete impl_; }

void BpeEncoder::EncodeLine(const std::string& line,
                            std::vector<int>* out) const {
  std::vector<int> ids;
  impl_->processor.Encode(line, &ids);
  out->insert(out->end(), ids.begin(), ids.end());
  out->push_back(impl_->processor.eos_id());
}

std::vector<int> BpeEncoder::EncodeText(const std::string& text) const {
  std::vector<int> ids;
  impl_->processor.Encode(text, &ids);
  return ids;
}

int BpeEncoder::vocab_size() const { return impl_->processor.GetPieceSize(); }

}  // namespace isoflop::data
