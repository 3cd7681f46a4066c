/** Bun embeds these at build time: `.lua` as text, `.wasm` as a file inside the executable. */
declare module "*.lua" {
  const source: string;
  export default source;
}
declare module "*.wasm" {
  const path: string;
  export default path;
}
