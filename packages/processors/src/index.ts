export { ctcGreedyDecode, ctcLabels, type DecodedText } from './ctc.ts';
export { type Ranked, softmaxRows, topK } from './softmax.ts';
export { DB_DEFAULTS, readingOrder, type TextBox, type TextBoxOptions, textBoxes } from './text-boxes.ts';
