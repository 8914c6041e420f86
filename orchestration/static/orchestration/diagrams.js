// Renders every <pre class="mermaid"> of the page with the vendored Mermaid, then
// marks the document so that a browser test knows the diagrams are drawn.
document.addEventListener("DOMContentLoaded", async () => {
  // At their own size (useMaxWidth off), never shrunk to the column's width: a long
  // pipeline scrolls sideways in its box instead of shrinking its text.
  mermaid.initialize({
    startOnLoad: false,
    securityLevel: "strict",
    theme: "neutral",
    flowchart: {
      useMaxWidth: false,
      nodeSpacing: 40,
      rankSpacing: 40,
      // Room between a group's title and its first box, which it otherwise touches.
      subGraphTitleMargin: { top: 6, bottom: 14 },
    },
  });
  try {
    await mermaid.run({ querySelector: "pre.mermaid" });
    document.documentElement.dataset.diagrams = "rendered";
  } catch (error) {
    document.documentElement.dataset.diagrams = "failed";
    throw error;
  }
});
