// anywidget entry: initialize() creates the per-model RPC channel and slice cache (shared by every
// view of the widget); render() builds one view and returns ONE cleanup that destroys it all.
import { createApp, type Shared } from "./app";
import { Cache } from "./cache";
import { Data } from "./data";
import type { Model } from "./model";
import { Rpc } from "./rpc";

const SHARED = new WeakMap<object, Shared & { views: number }>();

function shared(model: Model): Shared & { views: number } {
  let s = SHARED.get(model);
  if (!s) {
    const rpc = new Rpc(model, 120_000);
    const cache = new Cache(rpc);
    s = { rpc, cache, data: new Data(cache, model), views: 0 };
    SHARED.set(model, s);
  }
  return s;
}

function initialize({ model }: { model: Model }): () => void {
  shared(model);
  return () => {
    const s = SHARED.get(model);
    if (!s) return;
    s.rpc.destroy();
    s.cache.destroy();
    SHARED.delete(model);
  };
}

function render({ model, el }: { model: Model; el: HTMLElement }): () => void {
  const s = shared(model);
  s.views++;
  el.classList.add("patternviz");
  const cleanup = createApp(el, model, s);
  return () => {
    cleanup();
    s.views--;
    el.classList.remove("patternviz");
  };
}

export default { initialize, render };
