// The official `openai` npm client against mcserve's HTTP API (run by
// openai_api_test.py, which starts the server and installs the package).
//   node openai_node_client.mjs BASE_URL API_KEY MODEL [chat]
// Prints one JSON object with what the client saw; the Python test checks it.
// With "chat": chat.completions, plain and streamed, instead.
import OpenAI from "openai";

const [baseURL, apiKey, model, mode] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60000 });
const out = {};

if (mode === "chat") {
  const messages = [{ role: "system", content: "Recall facts." }, { role: "user", content: "@ k=7 ? k=" }];
  const plain = await client.chat.completions.create({
    model, messages, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 2,
  });
  out.plain = {
    object: plain.object, id: plain.id, message: plain.choices[0].message,
    finish_reason: plain.choices[0].finish_reason, usage: plain.usage,
    logprobs: plain.choices[0].logprobs.content.map((t) => [t.token, t.logprob, t.top_logprobs.length]),
  };
  const stream = await client.chat.completions.create({
    model, messages, max_tokens: 6, temperature: 0, stream: true,
  });
  let content = "";
  let role = null;
  let finish = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      if (c.delta.role) role = c.delta.role;
      content += c.delta.content ?? "";
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  out.stream = { role, content, finish_reason: finish };
  console.log(JSON.stringify(out));
  process.exit(0);
}

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

const prompt = "@ k=7 ? k=";
const plain = await client.completions.create({
  model, prompt, max_tokens: 8, temperature: 0, logprobs: 2,
});
out.plain = {
  text: plain.choices[0].text,
  finish_reason: plain.choices[0].finish_reason,
  tokens: plain.choices[0].logprobs.tokens,
  token_logprobs: plain.choices[0].logprobs.token_logprobs,
  top_logprobs: plain.choices[0].logprobs.top_logprobs,
  usage: plain.usage,
  object: plain.object,
  id: plain.id,
};

const stream = await client.completions.create({
  model, prompt, max_tokens: 8, temperature: 0, stream: true,
  stream_options: { include_usage: true },
});
let text = "";
let chunks = 0;
let finish = null;
let usage = null;
for await (const chunk of stream) {
  chunks += 1;
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    text += c.text;
    if (c.finish_reason) finish = c.finish_reason;
  }
}
out.stream = { text, chunks, finish_reason: finish, usage };

try {
  await client.completions.create({ model, prompt, max_tokens: 4, temperature: -1 });
  out.bad = { thrown: false };
} catch (e) {
  out.bad = { thrown: true, cls: e.constructor.name, status: e.status, message: e.message,
              param: e.param ?? null };
}
try {
  await client.completions.create({ model: "no-such-model", prompt, max_tokens: 4 });
  out.unknown_model = { thrown: false };
} catch (e) {
  out.unknown_model = { thrown: true, cls: e.constructor.name, status: e.status };
}
console.log(JSON.stringify(out));
