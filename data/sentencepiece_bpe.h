// SentencePiece behind a plain std:: interface. Debian's sentencepiece header
// declares its own absl::string_view and its library carries protobuf 3.14
// code (docs/architecture.md §1), so only sentencepiece_bpe.cc includes it,
// this header names nothing of abseil, and the binary that links it links no
// protobuf.
#ifndef ISOFLOP_DATA_SENTENCEPIECE_BPE_H_
#define ISOFLOP_DATA_SENTENCEPIECE_BPE_H_

#include <string>
#include <vector>

namespace isoflop::data {

// Trains a BPE model on the text file `input` (one sentence per line) and
// writes `model_prefix`.model / .vocab. Returns "" on success, else the error.
std::string TrainBpe(const std::string& input, const std::string& model_prefix,
                     int vocab_size, int threads);

struct BpeTrainOptions {
  int vocab_size = 4096;
  int threads = 2;
  // Sentences (lines) sampled from `input` for training: a large corpus
  // trains on a sample (SentencePiece's input_sentence_size).
  long long input_sentence_size = 2000000;  // NOLINT(google-runtime-int)
  // Code: no NFKC normalisation and no collapsing of whitespace, so that
  // indentation survives.
  bool keep_whitespace = false;
};
std::string TrainBpe(const std::string& input, const std::string& model_prefix,
                     const BpeTrainOptions& options);
// Writes the model's pieces as SentencePiece's trainer writes
// `model_prefix`.vocab ("piece<TAB>score" per line, in id order: the file the
// worker reads for sampled text, worker/piece_vocab.h), for a model given
// without one (`import --tokenizer`). Returns "" on success, else the error.
std::string WriteVocabFile(const std::string& model_path,
                           const std::string& vocab_path);

class BpeEncoder {
 public:
  // Loads `model_path`; on failure error() is non-empty.
  explicit BpeEncoder(const std::string& model_path);
  ~BpeEncoder();
  const std::string& error() const { return error_; }
  // Appends the ids of `line` then an end-of-sentence id to `out`.
  void EncodeLine(const std::string& line, std::vector<int>* out) const;
  // The ids of `text`, no end-of-sentence id (a prompt to continue).
  std::vector<int> EncodeText(const std::string& text) const;
  int vocab_size() const;

 private:
  struct Impl;
  Impl* impl_;
  std::string error_;
};

}  // namespace isoflop::data

#endif  // ISOFLOP_DATA_SENTENCEPIECE_BPE_H_
