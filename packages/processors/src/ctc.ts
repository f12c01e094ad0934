/**
 * CTC greedy decoding (a recogniser's output → text): at each time step the most likely label;
 * repeats collapse into one, and the blank (label 0) separates them and is dropped. The confidence
 * of a line is the mean probability of the labels it kept, as PaddleOCR reports it.
 */

/** A decoded line: its text and the mean probability of its characters (0 for an empty line). */
export interface DecodedText {
  text: string;
  confidence: number;
}

/**
 * The labels of a recogniser trained with a dictionary file (one character per line, PaddleOCR's
 * `ppocr_keys_v1.txt`): the blank first, then each line's character, then a space when the model was
 * trained with one (`use_space_char`).
 */
export function ctcLabels(dictionary: string, options: { space: boolean }): string[] {
  const characters = dictionary.split(/\r?\n/);
  if (characters.at(-1) === '') characters.pop();
  return ['', ...characters, ...(options.space ? [' '] : [])];
}

/**
 * Decodes one sequence of `steps` × `labels.length` probabilities (row-major, one row per time step).
 * Throws when the data does not hold whole rows of the labels' width.
 */
export function ctcGreedyDecode(
  probabilities: ArrayLike<number>,
  steps: number,
  labels: readonly string[],
): DecodedText {
  const width = labels.length;
  if (width < 2 || probabilities.length !== steps * width) {
    throw new RangeError(
      `CTC input of ${probabilities.length} values is not ${steps} steps of ${width} labels`,
    );
  }
  let text = '';
  let sum = 0;
  let kept = 0;
  let previous = -1;
  for (let step = 0; step < steps; step++) {
    const row = step * width;
    let best = 0;
    let bestP = probabilities[row] ?? 0;
    for (let label = 1; label < width; label++) {
      const p = probabilities[row + label] ?? 0;
      if (p > bestP) {
        best = label;
        bestP = p;
      }
    }
    if (best !== 0 && best !== previous) {
      text += labels[best];
      sum += bestP;
      kept++;
    }
    previous = best;
  }
  return { text, confidence: kept === 0 ? 0 : sum / kept };
}
