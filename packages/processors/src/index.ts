export {
  BUILTIN_RUNS,
  DEFAULT_MAX_PIXELS,
  type ProcessorContext,
  type ProcessorResult,
  type ProcessorRun,
} from './builtin.ts';
export { BUILTIN_PROCESSORS, type ProcessorDeclaration } from './catalog.ts';
export { ctcGreedyDecode, ctcLabels, type DecodedText } from './ctc.ts';
export {
  type ChannelOrder,
  type ChannelValues,
  cropRegion,
  type DecodedImage,
  type DetectorInput,
  type DetectorInputOptions,
  decodeImage,
  detectorInput,
  IMAGE_FORMATS,
  ImageError,
  type ImageErrorReason,
  type ImageFormat,
  type ImageHeader,
  type ImageTensor,
  inspectImage,
  rotate180,
  type TextLineInputOptions,
  textLineInput,
} from './image.ts';
export { type ImageFit, type ImageLayout, type ImageTensorOptions, imageTensor } from './image-tensor.ts';
export { type Ranked, softmaxRows, topK } from './softmax.ts';
export { DB_DEFAULTS, readingOrder, type TextBox, type TextBoxOptions, textBoxes } from './text-boxes.ts';
