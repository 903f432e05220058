interface TrieNode<T> {
  children: Map<string, TrieNode<T>> | undefined;
  /** The `*` child. */
  star: TrieNode<T> | undefined;
  /** Values whose pattern ends here. */
  here: Set<T> | undefined;
  /** Values whose pattern ends with `>` after this node. */
  rest: Set<T> | undefined;
}

function newNode<T>(): TrieNode<T> {
  return { children: undefined, star: undefined, here: undefined, rest: undefined };
}

/**
 * A segment trie of patterns. Matching walks the channel's segments once; at each level only the
 * literal child and the `*` child can continue, so the cost depends on the channel's length and
 * on the patterns that really match a prefix of it, not on how many patterns are stored.
 */
export class PatternTrie<T> {
  private readonly root: TrieNode<T> = newNode();
  private count = 0;

  /** Number of (pattern, value) pairs stored. */
  get size(): number {
    return this.count;
  }

  /** Adds `value` under the valid `pattern`. Returns false when it was already there. */
  add(pattern: string, value: T): boolean {
    const segments = pattern.split('.');
    let node = this.root;
    const last = segments.length - 1;
    for (let i = 0; i <= last; i++) {
      const seg = segments[i]!;
      if (seg === '>' && i === last) {
        node.rest ??= new Set();
        return this.insert(node.rest, value);
      }
      if (seg === '*') {
        node = node.star ??= newNode();
      } else {
        node.children ??= new Map();
        let child = node.children.get(seg);
        if (!child) node.children.set(seg, (child = newNode()));
        node = child;
      }
    }
    node.here ??= new Set();
    return this.insert(node.here, value);
  }

  private insert(set: Set<T>, value: T): boolean {
    if (set.has(value)) return false;
    set.add(value);
    this.count++;
    return true;
  }

  /** Removes `value` from `pattern`, pruning empty nodes. Returns false when it was not there. */
  remove(pattern: string, value: T): boolean {
    const segments = pattern.split('.');
    const path: TrieNode<T>[] = [this.root];
    let node: TrieNode<T> | undefined = this.root;
    let isRest = false;
    for (let i = 0; i < segments.length && node; i++) {
      const seg = segments[i]!;
      if (seg === '>' && i === segments.length - 1) {
        isRest = true;
        break;
      }
      node = seg === '*' ? node.star : node.children?.get(seg);
      if (node) path.push(node);
    }
    if (!node) return false;
    const set = isRest ? node.rest : node.here;
    if (!set?.delete(value)) return false;
    this.count--;
    if (set.size === 0) {
      if (isRest) node.rest = undefined;
      else node.here = undefined;
    }
    // Prune empty nodes bottom-up so a churn of distinct patterns does not leave a skeleton behind.
    for (let i = path.length - 1; i > 0; i--) {
      const n = path[i]!;
      if (n.here || n.rest || n.star || (n.children && n.children.size > 0)) break;
      const parent = path[i - 1]!;
      const seg = segments[i - 1]!;
      if (seg === '*') parent.star = undefined;
      else parent.children!.delete(seg);
      if (parent.children?.size === 0) parent.children = undefined;
    }
    return true;
  }

  /** Calls `visit` for each value whose pattern matches the channel given as its segments. */
  match(segments: readonly string[], visit: (value: T) => void): void {
    this.walk(this.root, segments, 0, visit);
  }

  private walk(node: TrieNode<T>, segments: readonly string[], i: number, visit: (value: T) => void): void {
    if (node.rest && i < segments.length) for (const v of node.rest) visit(v);
    if (i === segments.length) {
      if (node.here) for (const v of node.here) visit(v);
      return;
    }
    const child = node.children?.get(segments[i]!);
    if (child) this.walk(child, segments, i + 1, visit);
    if (node.star) this.walk(node.star, segments, i + 1, visit);
  }
}
