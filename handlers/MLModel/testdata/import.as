// Bad input: imports a function outside the math set (M4).
@external("env", "open_socket")
declare function open_socket(port: i32): i32;
export function alloc(bytes: i32): i32 { return <i32>heap.alloc(<usize>bytes); }
export function features_len(): i32 { return 37; }
export function init(ptr: i32, len: i32): i32 { return open_socket(len); }
export function score(ptr: i32, len: i32): f32 { return 0.5; }
