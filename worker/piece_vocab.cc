#include "worker/piece_vocab.h"

#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace isoflop::worker {
namespace {

std::string PieceText(const std::string& piece) {
  if (piece == "</s>") return "\n";
  if (piece == "<s>") return "";
  if (piece == "<unk>") return "\u2047";
  uint32_t byte = 0;
  if (piece.size() == 6 && piece.rfind("<0x", 0) == 0 && piece[5] == '>' &&
      absl::SimpleHexAtoi(piece.substr(3, 2), &byte)) {
    return std::string(1, static_cast<char>(byte));
  }
  return absl::StrReplaceAll(piece, {{"\u2581", " "}});
}

}  // namespace

absl::StatusOr<PieceVocab> PieceVocab::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  PieceVocab v;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const size_t tab = line.find('\t');
    if (tab == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", n, ": no tab: not a SentencePiece .vocab file"));
    }
    v.text_.push_back(PieceText(line.substr(0, tab)));
  }
  if (v.text_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": empty"));
  }
  return v;
}

const std::string& PieceVocab::Text(int id) const {
  static const std::string kNone;
  return id >= 0 && id < size() ? text_[id] : kNone;
}

}  // namespace isoflop::worker
