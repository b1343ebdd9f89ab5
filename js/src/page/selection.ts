// The selection trait, decoded once per change, and the per-point flags the renderers read.
import { setTraits, type Model } from "../model";
import { decodeIds, encodeIds } from "../wire";

export class Selection {
  ids: Uint32Array;
  flags = new Uint8Array(0);
  flagVersion = 0;

  constructor(private model: Model) {
    this.ids = decodeIds(model.get("selection"));
  }

  /** Read the trait again (after `change:selection`). */
  decode(): void {
    this.ids = decodeIds(this.model.get("selection"));
  }

  /** Flags for `n` points (bit 0: selected), rebuilt from the ids. */
  rebuildFlags(n: number): void {
    if (this.flags.length !== n) this.flags = new Uint8Array(n);
    else this.flags.fill(0);
    for (const id of this.ids) if (id < n) this.flags[id] = 1;
    this.flagVersion++;
  }

  set(ids: ArrayLike<number>): void {
    setTraits(this.model, { selection: encodeIds(ids) });
  }

  get size(): number {
    return this.ids.length;
  }
}
