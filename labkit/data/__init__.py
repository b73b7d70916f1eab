"""labkit.data: offline corpora, text cleaning, summarisation pairs and baselines, tokenizers (HF tokenizers), datasets, collators and augmentations."""

from labkit.lazy import lazy_exports

_EXPORTS = {
    # corpora.py
    "Corpus": "corpora",
    "CorpusInfo": "corpora",
    "load_corpus": "corpora",
    "list_corpora": "corpora",
    "fetch_corpus": "corpora",
    # hub.py
    "require_hub": "hub",
    "hub_unreachable_reason": "hub",
    # synthetic.py
    "SyntheticTask": "synthetic",
    "copy_task": "synthetic",
    "reverse_task": "synthetic",
    "modular_arithmetic": "synthetic",
    # tokenizer.py
    "Tokenizer": "tokenizer",
    "TokenInfo": "tokenizer",
    "train_tokenizer": "tokenizer",
    "load_tokenizer": "tokenizer",
    # datasets.py
    "LMBlocks": "datasets",
    "RandomBlockBatches": "datasets",
    "ClassificationDataset": "datasets",
    "Seq2SeqDataset": "datasets",
    "Batches": "datasets",
    "train_val_split": "datasets",
    # collators.py
    "PadCollator": "collators",
    "MLMCollator": "collators",
    "mask_tokens": "collators",
    # nsp.py
    "SentencePair": "nsp",
    "next_sentence_pairs": "nsp",
    "NextSentenceDataset": "nsp",
    # imbalance.py
    "imbalanced_split": "imbalance",
    "resample": "imbalance",
    "Subset": "imbalance",
    # clean.py
    "Cleaner": "clean",
    "CleaningTrace": "clean",
    "nfkc": "clean",
    "casefold": "clean",
    "strip_punctuation": "clean",
    "collapse_whitespace": "clean",
    "remove_stop_words": "clean",
    "stop_words": "clean",
    "segment_words": "clean",
    # summarize.py
    "ExtractiveSummary": "summarize",
    "IdfTable": "summarize",
    "idf_table": "summarize",
    "split_at_sentence_ends": "nsp",
    "split_sentences": "summarize",
    "summary_pairs": "summarize",
    "summary_words": "summarize",
    "lead": "summarize",
    "extract": "summarize",
    # augment.py
    "Compose": "augment",
    "TextTransform": "augment",
    "RandomInsertion": "augment",
    "RandomDeletion": "augment",
    "RandomSwap": "augment",
    "RandomReplacement": "augment",
    "reseeded": "augment",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
