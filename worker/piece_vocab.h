// Token id -> text with a dataset's SentencePiece tokenizer, read from its
// tokenizer.vocab ("piece<TAB>score" per line, in id order), for the
// "text" of sampled tokens (worker/sample_server.h). Read by hand: Debian's
// SentencePiece cannot share a process with the protobuf the worker links
// (docs/architecture.md §1), and streaming text out needs only the pieces.
#ifndef ISOFLOP_WORKER_PIECE_VOCAB_H_
#define ISOFLOP_WORKER_PIECE_VOCAB_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace isoflop::worker {

class PieceVocab {
 public:
  // NOT_FOUND when `path` cannot be read, INVALID_ARGUMENT (with the line
  // number) for a line without a tab or an empty file.
  static absl::StatusOr<PieceVocab> Load(const std::string& path);

  // The text a token stands for: the word-boundary mark U+2581 becomes a
  // space, </s> a newline, <s> nothing, <unk> U+2047, a byte piece <0xNN>
  // that byte; an id outside the vocabulary is "".
  const std::string& Text(int id) const;
  int size() const { return static_cast<int>(text_.size()); }

 private:
  std::vector<std::string> text_;
};

}  // namespace isoflop::worker

#endif  // ISOFLOP_WORKER_PIECE_VOCAB_H_
