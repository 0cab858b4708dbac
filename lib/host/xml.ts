/** One XML element: its name, attributes (entities decoded), child elements and direct text. */
export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  text: string;
}

/** Why an XML document could not be read, with the offset where reading stopped. */
export class XmlError extends Error {
  constructor(message: string, readonly offset: number) {
    super(`${message} at offset ${offset}`);
    this.name = "XmlError";
  }
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
const NAME = /[A-Za-z_:][-A-Za-z0-9_:.]*/y;

/**
 * Parses the XML subset libvirt writes (elements, attributes in ' or ", the five named entities and
 * numeric references, comments, CDATA, an `<?xml?>` declaration) and returns the root element.
 * Anything else (DOCTYPE, mismatched or unclosed tags, a stray `<` or `&`) is an error, so a truncated
 * file is reported instead of yielding half a domain.
 */
/** Deepest element nesting accepted; libvirt's domain XML needs fewer than 10. */
const MAX_DEPTH = 256;

export function parseXml(src: string): XmlElement {
  let i = 0;
  const fail = (what: string): never => {
    throw new XmlError(what, i);
  };
  const skipMisc = () => {
    for (;;) {
      while (i < src.length && /\s/.test(src[i]!)) i++;
      if (src.startsWith("<?", i)) {
        const end = src.indexOf("?>", i);
        if (end < 0) fail("unterminated processing instruction");
        i = end + 2;
      } else if (src.startsWith("<!--", i)) {
        const end = src.indexOf("-->", i + 4);
        if (end < 0) fail("unterminated comment");
        i = end + 3;
      } else if (src.startsWith("<!", i) && !src.startsWith("<![CDATA[", i)) {
        fail("DOCTYPE and other declarations are not supported");
      } else return;
    }
  };
  const readName = (): string => {
    NAME.lastIndex = i;
    const m = NAME.exec(src);
    if (!m) return fail("expected a name");
    i += m[0].length;
    return m[0];
  };

  const readElement = (depth: number): XmlElement => {
    // Recursion per level: a bound keeps a hostile document from overflowing the stack.
    if (depth > MAX_DEPTH) fail(`elements nested deeper than ${MAX_DEPTH} levels`);
    if (src[i] !== "<") fail("expected an element");
    i++;
    const el: XmlElement = { name: readName(), attrs: {}, children: [], text: "" };
    for (;;) {
      const before = i;
      while (i < src.length && /\s/.test(src[i]!)) i++;
      if (src.startsWith("/>", i)) {
        i += 2;
        return el;
      }
      if (src[i] === ">") {
        i++;
        break;
      }
      if (i === before) fail("expected whitespace, '>' or '/>'");
      const key = readName();
      while (/\s/.test(src[i] ?? "")) i++;
      if (src[i] !== "=") fail(`expected '=' after attribute ${key}`);
      i++;
      while (/\s/.test(src[i] ?? "")) i++;
      const quote = src[i];
      if (quote !== "'" && quote !== '"') return fail("expected a quoted attribute value");
      const end = src.indexOf(quote, i + 1);
      if (end < 0) fail("unterminated attribute value");
      const raw = src.slice(i + 1, end);
      if (raw.includes("<")) fail("'<' in attribute value");
      if (Object.hasOwn(el.attrs, key)) fail(`duplicate attribute ${key}`);
      // defineProperty, not assignment: an attribute named __proto__ must stay a plain value.
      Object.defineProperty(el.attrs, key, { value: decodeEntities(raw, i + 1), enumerable: true, writable: true, configurable: true });
      i = end + 1;
    }
    // Content: text, children, comments and CDATA until the matching end tag.
    for (;;) {
      if (i >= src.length) fail(`unclosed element <${el.name}>`);
      if (src.startsWith("</", i)) {
        i += 2;
        const closing = readName();
        if (closing !== el.name) fail(`</${closing}> closes <${el.name}>`);
        while (/\s/.test(src[i] ?? "")) i++;
        if (src[i] !== ">") fail("expected '>'");
        i++;
        return el;
      }
      if (src.startsWith("<!--", i)) {
        const end = src.indexOf("-->", i + 4);
        if (end < 0) fail("unterminated comment");
        i = end + 3;
      } else if (src.startsWith("<![CDATA[", i)) {
        const end = src.indexOf("]]>", i + 9);
        if (end < 0) fail("unterminated CDATA");
        el.text += src.slice(i + 9, end);
        i = end + 3;
      } else if (src.startsWith("<?", i)) {
        const end = src.indexOf("?>", i);
        if (end < 0) fail("unterminated processing instruction");
        i = end + 2;
      } else if (src[i] === "<") {
        el.children.push(readElement(depth + 1));
      } else {
        const next = src.indexOf("<", i);
        const end = next < 0 ? src.length : next;
        el.text += decodeEntities(src.slice(i, end), i);
        i = end;
      }
    }
  };

  skipMisc();
  const root = readElement(1);
  skipMisc();
  if (i < src.length) fail("content after the root element");
  return root;
}

/** Decodes the five named entities and &#N; / &#xN; references; any other `&` is an error. */
export function decodeEntities(s: string, offset = 0): string {
  return s.replace(/&([^;&\s]*);?/g, (whole, body: string, at: number) => {
    if (!whole.endsWith(";")) throw new XmlError("unterminated entity reference", offset + at);
    if (body in ENTITIES) return ENTITIES[body]!;
    const num = /^#x([0-9a-fA-F]+)$/.exec(body) ?? /^#([0-9]+)$/.exec(body);
    if (num) {
      const code = parseInt(num[1]!, body[1] === "x" ? 16 : 10);
      if (code > 0 && code <= 0x10ffff) return String.fromCodePoint(code);
    }
    throw new XmlError(`unknown entity &${body};`, offset + at);
  });
}

/** The direct children of `el` named `name`. */
export function childrenNamed(el: XmlElement, name: string): XmlElement[] {
  return el.children.filter((c) => c.name === name);
}

/** The first direct child of `el` named `name`, if any. */
export function child(el: XmlElement, name: string): XmlElement | undefined {
  return el.children.find((c) => c.name === name);
}
