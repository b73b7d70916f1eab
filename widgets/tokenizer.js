// labkit's tokenizers in the browser: the "char", byte-level "bpe" and "wordpiece" kinds exactly as
// labkit trains them with Hugging Face tokenizers, re-implemented from their documented behaviour so a page
// with no Python gives the same ids. The spec comes from labkit.export.page.tokenizer_spec().
//
// Pipeline (as in tokenizers): split out special tokens -> normalize -> pre-tokenize -> model.
// Strings are walked by code point (for...of), as Rust walks chars; never by UTF-16 unit.

// White_Space as the Rust and Oniguruma regex engines define it: JavaScript's \s also matches U+FEFF and
// misses U+0085, so the class is spelled out.
const WS = "\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const WS_RE = new RegExp(`[${WS}]`, "u");
// GPT-2's pre-tokenizer pattern (contractions, letters, numbers, other symbols, whitespace runs).
const BYTE_LEVEL_RE = new RegExp(
  `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
  "gu",
);
// control and private-use characters; format characters (Cf) come as a table in the spec, because the browser's
// Unicode tables are newer than those of the tokenizers library (likewise for punctuation)
const CONTROL_RE = /[\p{Cc}\p{Co}]/u;
const MARK_RE = /\p{Mn}/u;
const ASCII_PUNCT_RE = /[!-/:-@[-`{-~]/;

function inRanges(ranges, cp) {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (cp < ranges[mid][0]) hi = mid - 1;
    else if (cp > ranges[mid][1]) lo = mid + 1;
    else return true;
  }
  return false;
}

const CLEANUP = [
  [" .", "."],
  [" ?", "?"],
  [" !", "!"],
  [" ,", ","],
  [" ' ", "'"],
  [" n't", "n't"],
  [" 'm", "'m"],
  [" do not", " don't"],
  [" 's", "'s"],
  [" 've", "'ve"],
  [" 're", "'re"],
];

/** The 256 bytes -> printable characters table of byte-level BPE (GPT-2's layout). */
export function byteToUnicode() {
  const keep = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const table = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = keep.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + extra++);
  }
  return table;
}

function lowercase(text) {
  // character by character, as the Lowercase normalizer does (no context rule for a final sigma)
  let out = "";
  for (const ch of text) out += ch.toLowerCase();
  return out;
}

function isChinese(cp) {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b920 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

function bertNormalize(text, opts, tables) {
  let out = "";
  for (const ch of text) {
    const cp = ch.codePointAt(0);
    if (opts.clean_text) {
      const ws = ch === "\t" || ch === "\n" || ch === "\r";
      if (cp === 0 || cp === 0xfffd || (!ws && (CONTROL_RE.test(ch) || inRanges(tables.format, cp)))) continue;
      if (ws || WS_RE.test(ch)) {
        out += " ";
        continue;
      }
    }
    out += opts.handle_chinese_chars && isChinese(cp) ? ` ${ch} ` : ch;
  }
  const strip = opts.strip_accents === null || opts.strip_accents === undefined ? opts.lowercase : opts.strip_accents;
  if (strip) {
    let kept = "";
    for (const ch of out.normalize("NFD")) if (!MARK_RE.test(ch)) kept += ch;
    out = kept;
  }
  return opts.lowercase ? lowercase(out) : out;
}

function bertPreTokenize(text, tables) {
  const words = [];
  let cur = "";
  for (const ch of text) {
    if (WS_RE.test(ch)) {
      if (cur) words.push(cur);
      cur = "";
    } else if (ASCII_PUNCT_RE.test(ch) || inRanges(tables.punct, ch.codePointAt(0))) {
      if (cur) words.push(cur);
      words.push(ch);
      cur = "";
    } else {
      cur += ch;
    }
  }
  if (cur) words.push(cur);
  return words;
}

function bpeWord(symbols, ranks) {
  // merge the adjacent pair with the lowest rank (the leftmost on ties) until no pair has a rank
  const parts = symbols.slice();
  while (parts.length > 1) {
    let best = -1;
    let bestRank = Infinity;
    for (let i = 0; i < parts.length - 1; i++) {
      const rank = ranks.get(parts[i] + "\u0000" + parts[i + 1]);
      if (rank !== undefined && rank < bestRank) {
        bestRank = rank;
        best = i;
      }
    }
    if (best < 0) break;
    parts.splice(best, 2, parts[best] + parts[best + 1]);
  }
  return parts;
}

function wordPiece(word, vocab, spec) {
  const chars = Array.from(word);
  if (chars.length > spec.max_chars) return [spec.unk];
  const ids = [];
  let start = 0;
  while (start < chars.length) {
    let end = chars.length;
    let found;
    while (start < end) {
      const piece = (start > 0 ? spec.prefix : "") + chars.slice(start, end).join("");
      found = vocab.get(piece);
      if (found !== undefined) break;
      end--;
    }
    if (found === undefined) return [spec.unk];
    ids.push(found);
    start = end;
  }
  return ids;
}

/** A tokenizer spec (kind, vocab, added tokens, merges, normalizer options) in, {encode, decode, token} out. */
export function makeTokenizer(spec) {
  const vocab = new Map(spec.vocab.map((token, id) => [token, id]));
  const added = spec.added.slice().sort((a, b) => b[0].length - a[0].length); // longest first at one position
  const ranks = new Map((spec.merges || []).map(([a, b], i) => [a + "\u0000" + b, i]));
  const bytes = byteToUnicode();
  const unbyte = new Map(bytes.map((ch, b) => [ch, b]));
  const encoder = new TextEncoder();

  function splitAdded(text) {
    // leftmost match first, the longest special token where several start at the same place
    const pieces = [];
    let rest = text;
    while (rest) {
      let at = -1;
      let hit = null;
      for (const [content, id] of added) {
        const i = rest.indexOf(content);
        if (i >= 0 && (at < 0 || i < at)) {
          at = i;
          hit = [content, id];
        }
      }
      if (at < 0) {
        pieces.push(rest);
        break;
      }
      if (at > 0) pieces.push(rest.slice(0, at));
      pieces.push(hit[1]);
      rest = rest.slice(at + hit[0].length);
    }
    return pieces;
  }

  function encodePlain(text) {
    if (spec.kind === "char") {
      const norm = spec.lowercase ? lowercase(text) : text;
      const ids = [];
      for (const ch of norm) {
        const id = vocab.get(ch);
        if (id !== undefined) ids.push(id);
        else if (spec.unk !== null) ids.push(spec.unk);
      }
      return ids;
    }
    if (spec.kind === "bpe") {
      const norm = spec.lowercase ? lowercase(text) : text;
      const ids = [];
      for (const match of norm.matchAll(BYTE_LEVEL_RE)) {
        const symbols = Array.from(encoder.encode(match[0]), (b) => bytes[b]);
        for (const part of bpeWord(symbols, ranks)) {
          const id = vocab.get(part);
          if (id !== undefined) ids.push(id);
          else if (spec.unk !== null) ids.push(spec.unk);
        }
      }
      return ids;
    }
    const ids = [];
    for (const word of bertPreTokenize(bertNormalize(text, spec.bert, spec), spec)) ids.push(...wordPiece(word, vocab, spec));
    return ids;
  }

  function encode(text) {
    const ids = [];
    for (const piece of splitAdded(text)) {
      if (typeof piece === "number") ids.push(piece);
      else ids.push(...encodePlain(piece));
    }
    return ids;
  }

  const special = new Set(spec.added.map(([, id]) => id));

  /** One id in, the text it stands for out (byte-level pieces may be partial characters: U+FFFD then). */
  function token(id) {
    const tok = spec.vocab[id] ?? "";
    if (special.has(id)) return tok;
    if (spec.kind === "bpe") return new TextDecoder().decode(Uint8Array.from(Array.from(tok), (ch) => unbyte.get(ch) ?? 63));
    if (spec.kind === "wordpiece") return tok.startsWith(spec.prefix) ? tok.slice(spec.prefix.length) : tok;
    return tok;
  }

  /** Ids in, text out (special tokens skipped): what the Python tokenizer's decode(..., skip_special_tokens=True) gives. */
  function decode(ids) {
    const kept = ids.filter((id) => !special.has(id));
    if (spec.kind === "bpe") {
      const all = [];
      for (const id of kept) for (const ch of spec.vocab[id] ?? "") all.push(unbyte.get(ch) ?? 63);
      return new TextDecoder().decode(Uint8Array.from(all));
    }
    if (spec.kind === "wordpiece") {
      let out = "";
      kept.forEach((id, i) => {
        const tok = spec.vocab[id] ?? "";
        let piece = tok.startsWith(spec.prefix) ? tok.slice(spec.prefix.length) : (i > 0 ? " " : "") + tok;
        // token by token, as the WordPiece decoder does: " ," becomes "," but "don ' t" stays apart
        for (const [from, to] of CLEANUP) piece = piece.split(from).join(to);
        out += piece;
      });
      return out;
    }
    return kept.map((id) => spec.vocab[id] ?? "").join("");
  }

  return { encode, decode, token, kind: spec.kind, vocabSize: spec.vocab.length, special };
}
