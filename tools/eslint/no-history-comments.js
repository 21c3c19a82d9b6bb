// An eslint rule: comments say why the code is as it is, not which work item or sitting produced it.
// "issue N part M", "session N", "wave N" mean nothing to a reader of the repository; the requirement
// behind them belongs in docs/ (with its reasoning) and the comment says what it protects.
// Plain JavaScript because eslint.config.js loads it before anything is compiled.

/** Work-tracking labels: issue, part, session or wave followed by a number ("Issue #N", "part N(b)"). */
export const HISTORY_LABEL =
  /\b(?:issues?\s+#?\d|parts?\s+\d+(?:\s*\([a-z]\))?\b|sessions?\s+\d+\b(?!\s*(?:bytes?|ms|s)\b)|waves?\s+\d)/i;

export default {
  meta: {
    type: 'suggestion',
    docs: { description: 'comments explain why, they do not cite issue, part, session or wave numbers' },
    schema: [],
    messages: {
      history:
        'comment cites "{{label}}": say why the code is as it is (requirements belong in docs/ with their reasons)',
    },
  },
  create(context) {
    const source = context.sourceCode;
    return {
      Program() {
        for (const comment of source.getAllComments()) {
          const match = HISTORY_LABEL.exec(comment.value);
          if (match) context.report({ loc: comment.loc, messageId: 'history', data: { label: match[0] } });
        }
      },
    };
  },
};
