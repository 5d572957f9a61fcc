// Small DOM helpers shared by the console's scripts.

const SVG_NS = 'http://www.w3.org/2000/svg';

export function build(ns, tag, attrs, children) {
  const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (key === 'class') node.setAttribute('class', value);
    else if (key === 'text') node.textContent = value;
    else if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  for (const child of children ?? []) node.append(child);
  return node;
}
export const el = (tag, attrs, ...children) => build(null, tag, attrs, children);
export const svg = (tag, attrs, ...children) => build(SVG_NS, tag, attrs, children);

export function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}
