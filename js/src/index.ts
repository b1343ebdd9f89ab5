// PLACEHOLDER entry until the frontend (issue 2, widget part) lands: the real widget replaces
// this file. It exists only so that `npm run build` and `pip install -e .` work from day one.
interface AnyModel {
  get(name: string): unknown;
  on(event: string, cb: () => void): void;
  off(event: string, cb: () => void): void;
}

function render({ model, el }: { model: AnyModel; el: HTMLElement }): () => void {
  const div = document.createElement("div");
  div.className = "patternviz-placeholder";
  const update = () => {
    div.textContent = `patternviz-widget: layer=${String(model.get("layer"))}`;
  };
  update();
  model.on("change:layer", update);
  el.appendChild(div);
  return () => {
    model.off("change:layer", update);
    div.remove();
  };
}

export default { render };
