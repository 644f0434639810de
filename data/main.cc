// isoflop-data: tokenizer training and token files, in a process without
// protobuf or gRPC (see data/sentencepiece_bpe.h).
#include <cstdio>

#include "CLI/CLI.hpp"
#include "common/exit_codes.h"
#include "data/prepare.h"

int main(int argc, char** argv) {
  CLI::App app{"isoflop-data: prepare tokenised datasets for isoflop-trainer"};
  app.require_subcommand(1);
  isoflop::data::PrepareOptions o;
  CLI::App* prepare = app.add_subcommand(
      "prepare",
      "train a SentencePiece BPE tokenizer and write train.bin, val.bin, "
      "tokenizer.model and meta.json into --out");
  prepare->add_option("--out", o.out_dir, "dataset directory to write")
      ->required();
  prepare
      ->add_option("--vocab-size", o.vocab_size,
                   "BPE vocabulary size (64..65535)")
      ->capture_default_str();
  prepare
      ->add_option("--val-fraction", o.val_fraction,
                   "share of text held out for validation")
      ->capture_default_str();
  prepare->add_option(
      "--input", o.inputs,
      "text files (default: the King James Bible from Debian's bible-kjv)");
  prepare->add_option("--threads", o.threads, "tokenizer training threads")
      ->capture_default_str();
  app.footer(
      "Example: isoflop-data prepare --out ~/data/kjv-bpe512 --vocab-size 512");
  CLI11_PARSE(app, argc, argv);
  if (absl::Status s = isoflop::data::Prepare(o); !s.ok()) {
    std::fprintf(stderr, "isoflop-data: %s\n",
                 std::string(s.message()).c_str());
    const bool bad_input = s.code() == absl::StatusCode::kInvalidArgument ||
                           s.code() == absl::StatusCode::kNotFound;
    return bad_input ? isoflop::kExitInvalidConfig : 1;
  }
  return 0;
}
