// request(name, msg, {timeout}) -> Promise<{meta, arrays}>, over anywidget custom messages.
// The kernel answers only between cell executions, so the default timeout is generous (> 3 s).
import type { Model } from "./model";
import { Assembler, type Decoded } from "./wire";

export interface Reply {
  meta: Record<string, unknown>;
  arrays: Record<string, Decoded>;
}

export class RpcError extends Error {}

interface Pending {
  asm: Assembler;
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

let counter = 0;

/** One part of a reply as the kernel sends it (see wire.ts for the parts' layout). */
type ReplyMessage = Parameters<Assembler["add"]>[0] & { kind?: string; id: string; error?: unknown };

export class Rpc {
  private pending = new Map<string, Pending>();
  private readonly onMsg: (content: ReplyMessage | null, buffers: (DataView | ArrayBuffer)[]) => void;

  constructor(
    private model: Model,
    private defaultTimeout = 60_000,
  ) {
    this.onMsg = (content, buffers) => {
      if (!content || content.kind !== "pv:rep") return;
      const p = this.pending.get(content.id);
      if (!p) return;
      if (content.error) {
        this.finish(content.id);
        p.reject(new RpcError(String(content.error)));
        return;
      }
      try {
        if (p.asm.add(content, buffers ?? [])) {
          this.finish(content.id);
          p.resolve({ meta: p.asm.meta, arrays: p.asm.arrays() });
        }
      } catch (e) {
        this.finish(content.id);
        p.reject(e instanceof Error ? e : new Error(String(e)));
      }
    };
    model.on("msg:custom", this.onMsg);
  }

  private finish(id: string): void {
    const p = this.pending.get(id);
    if (p) clearTimeout(p.timer);
    this.pending.delete(id);
  }

  request(name: string, msg: Record<string, unknown>, opts: { timeout?: number } = {}): Promise<Reply> {
    const id = `pv-${Date.now().toString(36)}-${(counter++).toString(36)}`;
    const timeout = opts.timeout ?? this.defaultTimeout;
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new RpcError(`no answer to "${name}" from the kernel within ${Math.round(timeout / 1000)} s (is it busy?)`),
        );
      }, timeout);
      this.pending.set(id, { asm: new Assembler(), resolve, reject, timer });
      this.model.send({ kind: "pv:req", id, name, msg });
    });
  }

  get inFlight(): number {
    return this.pending.size;
  }

  destroy(): void {
    this.model.off("msg:custom", this.onMsg);
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new RpcError("widget closed"));
      this.pending.delete(id);
    }
  }
}
