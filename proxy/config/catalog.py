"""The providers we know, as data: wire format, default base URL and default key variable.

An OpenAI-compatible vendor is one row here; only a different wire format needs code. This
table is the one source of known prefixes: a deployment naming any other prefix is disabled
with a hint (`unknown_provider_hint`), and a provider adapter added elsewhere registers its
prefix by adding its row (with its `wire`) here.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    wire: str
    """Which adapter speaks to it: "openai", "anthropic", "gemini" or "mock"."""
    default_base: str
    """Its base URL when a deployment names no api_base; `{NAME}` is read from the
    environment (Cloudflare's account id); empty when the deployment must name one."""
    key_env: str | None
    """The variable LiteLLM reads when a deployment names no api_key."""
    needs_key: bool = True
    also_key_env: tuple[str, ...] = ()
    """Other variables LiteLLM reads for the key, in order, after `key_env`."""
    base_env: str | None = None
    """The variable LiteLLM reads for the base URL when a deployment names no api_base."""

    @property
    def needs_base(self) -> bool:
        """True when the provider has no default base URL (`openai_like/`, `litellm_proxy/`)."""
        return not self.default_base and self.wire == "openai"


def _compatible(
    name: str, base: str, key_env: str | None, *also: str, base_env: str | None = None
) -> ProviderSpec:
    """An OpenAI-compatible vendor (LiteLLM's default base URL and key variable)."""
    return ProviderSpec(name, "openai", base, key_env, True, also, base_env)


def _local(name: str, base: str) -> ProviderSpec:
    """An OpenAI-compatible server run locally, which needs no key."""
    return ProviderSpec(name, "openai", base, None, needs_key=False)


COHERE_BASE = "https://api.cohere.ai/compatibility/v1"
"""Cohere's OpenAI Compatibility API (chat with tools and streams, embeddings)."""

_ROWS = [
    ProviderSpec("openai", "openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    ProviderSpec("anthropic", "anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY"),
    _compatible("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    _compatible("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    _compatible("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    _compatible("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    _compatible(
        "together_ai",
        "https://api.together.xyz/v1",
        "TOGETHERAI_API_KEY",
        "TOGETHER_API_KEY",
        "TOGETHER_AI_API_KEY",
    ),
    _compatible("fireworks_ai", "https://api.fireworks.ai/inference/v1", "FIREWORKS_AI_API_KEY"),
    _compatible("xai", "https://api.x.ai/v1", "XAI_API_KEY"),
    _compatible("cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"),
    _compatible("deepinfra", "https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY"),
    _compatible("perplexity", "https://api.perplexity.ai", "PERPLEXITYAI_API_KEY"),
    _compatible(
        "nvidia_nim",
        "https://integrate.api.nvidia.com/v1",
        "NVIDIA_NIM_API_KEY",
        base_env="NVIDIA_NIM_API_BASE",
    ),
    _compatible(
        "github",
        "https://models.inference.ai.azure.com",
        "GITHUB_API_KEY",
        base_env="GITHUB_API_BASE",
    ),
    # Cloudflare's OpenAI-compatible endpoint (the same models as LiteLLM's /ai/run/ calls).
    _compatible(
        "cloudflare",
        "https://api.cloudflare.com/client/v4/accounts/{CLOUDFLARE_ACCOUNT_ID}/ai/v1",
        "CLOUDFLARE_API_KEY",
    ),
    _compatible(
        "zhipu", "https://open.bigmodel.cn/api/paas/v4", "ZHIPUAI_API_KEY", "ZHIPU_API_KEY"
    ),
    _compatible("zai", "https://api.z.ai/api/paas/v4", "ZAI_API_KEY"),
    _compatible(
        "huggingface", "https://router.huggingface.co/v1", "HF_TOKEN", "HUGGINGFACE_API_KEY"
    ),
    _compatible(
        "sambanova",
        "https://api.sambanova.ai/v1",
        "SAMBANOVA_API_KEY",
        base_env="SAMBANOVA_API_BASE",
    ),
    _compatible("nebius", "https://api.studio.nebius.ai/v1", "NEBIUS_API_KEY"),
    _compatible("moonshot", "https://api.moonshot.ai/v1", "MOONSHOT_API_KEY"),
    _compatible(
        "dashscope", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "DASHSCOPE_API_KEY"
    ),
    _compatible("anyscale", "https://api.endpoints.anyscale.com/v1", "ANYSCALE_API_KEY"),
    _compatible("empower", "https://app.empower.dev/api/v1", "EMPOWER_API_KEY"),
    _compatible("meta_llama", "https://api.llama.com/compat/v1", "LLAMA_API_KEY"),
    _compatible("ai21_chat", "https://api.ai21.com/studio/v1", "AI21_API_KEY"),
    _compatible("volcengine", "https://ark.cn-beijing.volces.com/api/v3", "VOLCENGINE_API_KEY"),
    _compatible("codestral", "https://codestral.mistral.ai/v1", "CODESTRAL_API_KEY"),
    _compatible(
        "friendliai",
        "https://api.friendli.ai/serverless/v1",
        "FRIENDLIAI_API_KEY",
        "FRIENDLI_TOKEN",
    ),
    _compatible("galadriel", "https://api.galadriel.com/v1", "GALADRIEL_API_KEY"),
    _compatible("nscale", "https://inference.api.nscale.com/v1", "NSCALE_API_KEY"),
    _compatible("novita", "https://api.novita.ai/v3/openai", "NOVITA_API_KEY"),
    _compatible("featherless_ai", "https://api.featherless.ai/v1", "FEATHERLESS_AI_API_KEY"),
    _compatible("hyperbolic", "https://api.hyperbolic.xyz/v1", "HYPERBOLIC_API_KEY"),
    _compatible("lambda_ai", "https://api.lambda.ai/v1", "LAMBDA_API_KEY"),
    _compatible("aiml", "https://api.aimlapi.com/v1", "AIML_API_KEY"),
    _compatible("v0", "https://api.v0.dev/v1", "V0_API_KEY"),
    _compatible("morph", "https://api.morphllm.com/v1", "MORPH_API_KEY"),
    _compatible("publicai", "https://api.publicai.co/v1", "PUBLICAI_API_KEY"),
    _compatible("veniceai", "https://api.venice.ai/api/v1", "VENICE_AI_API_KEY"),
    _compatible("scaleway", "https://api.scaleway.ai/v1", "SCW_SECRET_KEY"),
    _compatible("synthetic", "https://api.synthetic.new/openai/v1", "SYNTHETIC_API_KEY"),
    _compatible("nano-gpt", "https://nano-gpt.com/api/v1", "NANOGPT_API_KEY"),
    _compatible("poe", "https://api.poe.com/v1", "POE_API_KEY"),
    _compatible("chutes", "https://llm.chutes.ai/v1", "CHUTES_API_KEY"),
    _compatible("gmi", "https://api.gmi-serving.com/v1", "GMI_API_KEY"),
    _compatible("aihubmix", "https://aihubmix.com/v1", "AIHUBMIX_API_KEY"),
    _compatible("xiaomi_mimo", "https://api.xiaomimimo.com/v1", "XIAOMI_MIMO_API_KEY"),
    _compatible("llamagate", "https://api.llamagate.dev/v1", "LLAMAGATE_API_KEY"),
    # No default base: the deployment names its api_base (the key is optional, as in LiteLLM).
    ProviderSpec("openai_like", "openai", "", None, needs_key=False),
    ProviderSpec("custom_openai", "openai", "", None, needs_key=False),
    ProviderSpec(
        "litellm_proxy",
        "openai",
        "",
        "LITELLM_PROXY_API_KEY",
        needs_key=False,
        base_env="LITELLM_PROXY_API_BASE",
    ),
    _local("ollama", "http://localhost:11434/v1"),
    _local("ollama_chat", "http://localhost:11434/v1"),
    _local("hosted_vllm", "http://localhost:8000/v1"),
    _local("lm_studio", "http://localhost:1234/v1"),
    _local("llamafile", "http://127.0.0.1:8080/v1"),
    _local("xinference", "http://127.0.0.1:9997/v1"),
    # Cloud providers: the base (or region) and credentials come from `config/cloud.py`.
    ProviderSpec("azure", "azure", "", "AZURE_API_KEY", False, base_env="AZURE_API_BASE"),
    ProviderSpec("azure_ai", "azure", "", "AZURE_AI_API_KEY", False, base_env="AZURE_AI_API_BASE"),
    ProviderSpec("bedrock", "bedrock", "", None, needs_key=False),
    ProviderSpec("cohere", "cohere", COHERE_BASE, "COHERE_API_KEY"),
    ProviderSpec("cohere_chat", "cohere", COHERE_BASE, "COHERE_API_KEY"),
    ProviderSpec("mock", "mock", "", None, needs_key=False),
    ProviderSpec("gemini", "gemini", "https://generativelanguage.googleapis.com", "GEMINI_API_KEY"),
    # The regional base, project and service account come from `config/vertex.py`.
    ProviderSpec("vertex_ai", "vertex_ai", "", None, needs_key=False),
]

PROVIDERS: dict[str, ProviderSpec] = {row.name: row for row in _ROWS}

OLLAMA = frozenset({"ollama", "ollama_chat"})
"""Ollama's prefixes: its OpenAI-compatible API is under `/v1` of the server's address."""

# Other names for a provider we serve, each the same service (so suggesting it never sends a
# request anywhere else): LiteLLM spellings and the vendor's own name.
_SAME_SERVICE = {
    "together": "together_ai",
    "togetherai": "together_ai",
    "fireworks": "fireworks_ai",
    "fireworksai": "fireworks_ai",
    "vllm": "hosted_vllm",
    "lmstudio": "lm_studio",
    "nvidia": "nvidia_nim",
    "nim": "nvidia_nim",
    "zhipuai": "zhipu",
    "bigmodel": "zhipu",
    "moonshotai": "moonshot",
    "kimi": "moonshot",
    "alibaba": "dashscope",
    "hf": "huggingface",
    "grok": "xai",
    "x-ai": "xai",
    "perplexityai": "perplexity",
    "cloudflare_workers": "cloudflare",
    "workers_ai": "cloudflare",
    "github_models": "github",
    "openai_compatible": "openai_like",
    "text-completion-openai": "openai",
    "sambanova_ai": "sambanova",
    "nebius_ai": "nebius",
}

# LiteLLM's inference for a model named without a provider prefix.
_INFERRED = [
    ("claude", "anthropic"),
    ("gpt-", "openai"),
    ("chatgpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("text-embedding-", "openai"),
    ("davinci", "openai"),
    ("babbage", "openai"),
]
INFERRED_PREFIXES: tuple[tuple[str, str], ...] = tuple(_INFERRED)
"""(name prefix, provider) pairs a bare model name is inferred from, in order."""


def split_model(model: str, custom_provider: str | None = None) -> tuple[str | None, str]:
    """Splits `provider/name` into its provider and the name the upstream is called with.

    `custom_provider` is `litellm_params.custom_llm_provider`: it names the provider, and
    `model` is then the upstream name (a leading `<custom_provider>/` is stripped, as in
    LiteLLM). It may name a provider we do not know; `known` tells.

    Returns:
        (provider, upstream_name); provider is None when it can neither be read from a known
        prefix nor inferred from the name as LiteLLM does; an unknown `head/` prefix is
        returned as the provider (check it with `known`).
    """
    if custom_provider:
        head, sep, rest = model.partition("/")
        return custom_provider, rest if sep and head == custom_provider else model
    head, sep, rest = model.partition("/")
    if sep and head in PROVIDERS:
        return head, rest
    for prefix, provider in _INFERRED:
        if model.startswith(prefix):
            return provider, model
    if sep and head and rest:
        return head, rest
    return None, model


_HF_PROVIDERS = frozenset(
    {
        "cerebras",
        "cohere",
        "featherless-ai",
        "fireworks-ai",
        "groq",
        "hf-inference",
        "hyperbolic",
        "nebius",
        "novita",
        "nscale",
        "ovhcloud",
        "publicai",
        "sambanova",
        "scaleway",
        "together",
    }
)
"""Hugging Face's inference providers, as LiteLLM's `huggingface/<provider>/<org>/<model>`
names them."""


def huggingface_model(name: str) -> str:
    """Returns the name Hugging Face's router takes for LiteLLM's `<provider>/<org>/<model>`
    (`<org>/<model>:<provider>`); any other name as it is."""
    head, sep, rest = name.partition("/")
    if sep and head in _HF_PROVIDERS and "/" in rest:
        return f"{rest}:{head}"
    return name


def known(provider: str) -> bool:
    """Whether `provider` is a prefix we serve."""
    return provider in PROVIDERS


def unknown_provider_hint(provider: str, rest: str, api_base: str | None) -> str:
    """Returns why a deployment naming the unknown `provider` is disabled, and what to write.

    A suggestion is made only where it names the same service (LiteLLM's other spellings);
    the nearest known prefix by spelling is named as such, never offered as a fix, because a
    near spelling (`grok`, `groq`) is often another company.
    """
    out = f"unknown provider '{provider}'"
    same = _SAME_SERVICE.get(provider.lower())
    if same in PROVIDERS:
        return f"{out}: the same service is served as {same}/ (write {same}/{rest})"
    near = difflib.get_close_matches(provider.lower(), list(PROVIDERS), n=1, cutoff=0.6)
    if near:
        out += f" (the nearest known prefix is '{near[0]}': use it only if it is that service)"
    else:
        out += " (no known prefix is close)"
    if api_base:
        out += f"; if {api_base} speaks the OpenAI API, write openai_like/{rest}"
    return out
