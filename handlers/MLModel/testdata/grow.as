// Bad input: score() grows memory until it cannot (M6 caps it; M10's fuel ends the loop).
export function alloc(bytes: i32): i32 { return <i32>heap.alloc(<usize>bytes); }
export function features_len(): i32 { return 37; }
export function init(ptr: i32, len: i32): i32 { return 0; }
export function score(ptr: i32, len: i32): f32 {
  let pages: i32 = 0;
  while (true) { if (memory.grow(1) < 0) pages--; else pages++; }
  return <f32>pages;
}
