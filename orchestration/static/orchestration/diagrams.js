// Renders every <pre class="mermaid"> of the page with the vendored Mermaid, then
// marks the document so that a browser test knows the diagrams are drawn.
document.addEventListener("DOMContentLoaded", async () => {
  mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "neutral" });
  try {
    await mermaid.run({ querySelector: "pre.mermaid" });
    document.documentElement.dataset.diagrams = "rendered";
  } catch (error) {
    document.documentElement.dataset.diagrams = "failed";
    throw error;
  }
});
