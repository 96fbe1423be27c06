/**
 * The single-process contender of `deno task bench mr`: counts the words of FILE... with the
 * tokenizer of the bundled wc app into one Map, writes `<word> <count>` lines to OUT, and
 * prints the distinct and total words as JSON on stdout.
 * Usage: deno run -A bench/wc_single.ts OUT FILE...
 */
import { forEachWord } from "../mr/apps/_words.ts";

if (import.meta.main) {
  const [out, ...files] = Deno.args;
  const counts = new Map<string, number>();
  const decoder = new TextDecoder();
  const add = (word: string) => counts.set(word, (counts.get(word) ?? 0) + 1);
  for (const file of files) forEachWord(decoder.decode(await Deno.readFile(file)), add);
  let total = 0;
  const lines: string[] = [];
  for (const [word, count] of counts) {
    total += count;
    lines.push(`${word} ${count}\n`);
  }
  await Deno.writeTextFile(out, lines.join(""));
  console.log(JSON.stringify({ distinct: counts.size, total }));
}
